import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GiB, MiB, VisorError, VmCreateSpec, parseOrThrow } from '../core/index.js';
import type { VmConfig } from '../core/index.js';
import { applyVmUpdate, buildVmConfig } from './build-config.js';
import type { BuildContext } from './build-config.js';

const host = { logicalCpus: 2, totalMemory: 24 * GiB };
let counter = 0;
function ctx(existing: VmConfig[] = [], overrides: Partial<BuildContext> = {}): BuildContext {
  return {
    id: `00000000-0000-4000-8000-${String(++counter).padStart(12, '0')}`,
    now: new Date('2026-01-01T00:00:00Z'),
    host,
    existing,
    randomBytes: (n) => new Uint8Array(n).fill(counter),
    bootDisk: { path: '/var/lib/visor/vms/x/disks/a.vhdx', format: 'vhdx' },
    imageGenerations: [1, 2],
    sourceImage: 'tiny-x64',
    qemuVersion: '10.0.2',
    ...overrides,
  };
}

function refusal(fn: () => unknown, field: string, pattern: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof VisorError, `expected a VisorError, got ${String(error)}`);
    assert.equal(error.field, field);
    assert.match(error.message, pattern);
    return true;
  });
}

test('defaults: generation 1 boots from IDE 0:0, DVD on IDE 1:0, one unconnected NIC', () => {
  const vm = buildVmConfig({ name: 'web1' }, ctx());
  assert.equal(vm.generation, 1);
  assert.deepEqual(vm.disks.map((d) => [d.controller, d.controllerNumber, d.location]), [['ide', 0, 0]]);
  assert.deepEqual(vm.dvd, { controller: 'ide', controllerNumber: 1, location: 0, iso: null });
  assert.equal(vm.networkAdapters.length, 1);
  assert.match(vm.networkAdapters[0]!.mac, /^52:54:00:/);
  assert.equal(vm.networkAdapters[0]!.switchName, null);
  assert.equal(vm.memory.startup, 512 * MiB);
  assert.equal(vm.machineType, 'pc-i440fx-10.0', 'the machine type is pinned to the QEMU that created the VM');
});

test('generation 2 boots from SCSI and refuses IDE', () => {
  const vm = buildVmConfig({ name: 'g2', generation: 2 }, ctx());
  assert.equal(vm.disks[0]!.controller, 'scsi');
  assert.equal(vm.machineType, 'pc-q35-10.0');
  refusal(() => buildVmConfig({ name: 'g2b', generation: 2, bootDiskController: 'ide' }, ctx()), 'bootDiskController', /IDE/);
});

test('unknown fields are named', () => {
  refusal(() => parseOrThrow(VmCreateSpec, { name: 'x', colour: 'red' }), 'colour', /Unknown field "colour"/);
});

test('vCPUs: 0 and 100000 are refused with the allowed range', () => {
  refusal(() => buildVmConfig({ name: 'a', processorCount: 0 }, ctx()), 'processorCount', /from 1 to 2: current value is 0/);
  refusal(() => buildVmConfig({ name: 'a', processorCount: 100000 }, ctx()), 'processorCount', /current value is 100000/);
  assert.equal(buildVmConfig({ name: 'a', processorCount: 2 }, ctx()).processors.count, 2);
});

test('memory beyond what the host can back is refused', () => {
  refusal(() => buildVmConfig({ name: 'a', startupMemory: 64 * GiB }, ctx()), 'startupMemory', /current value is 64G/);
  refusal(() => buildVmConfig({ name: 'a', startupMemory: 1 * MiB }, ctx()), 'startupMemory', /from 32M/);
  refusal(() => buildVmConfig({ name: 'a', startupMemory: 33 * MiB }, ctx()), 'startupMemory', /multiple of 2M/);
});

test('duplicate names (any case) and MACs are refused', () => {
  const first = buildVmConfig({ name: 'db', networkAdapters: [{ mac: '52:54:00:aa:bb:cc' }] }, ctx());
  refusal(() => buildVmConfig({ name: 'DB' }, ctx([first])), 'name', /already exists/);
  refusal(
    () => buildVmConfig({ name: 'db2', networkAdapters: [{ mac: '52:54:00:AA:BB:CC' }] }, ctx([first])),
    'networkAdapters.0.mac',
    /already used by VM "db"/,
  );
  refusal(() => buildVmConfig({ name: 'db3', networkAdapters: [{ mac: '01:00:00:00:00:01' }] }, ctx([first])), 'networkAdapters.0.mac', /multicast/);
});

test('allocated MACs are unique even when randomness repeats', () => {
  const same = () => new Uint8Array([1, 2, 3]);
  const a = buildVmConfig({ name: 'a' }, ctx([], { randomBytes: same }));
  let n = 0;
  const b = buildVmConfig({ name: 'b' }, ctx([a], { randomBytes: (k) => new Uint8Array(k).fill(n++ < 3 ? 0 : 9).map((v, i) => (n < 2 ? [1, 2, 3][i]! : v)) }));
  assert.notEqual(a.networkAdapters[0]!.mac, b.networkAdapters[0]!.mac);
});

test('an image that boots only in generation 1 refuses generation 2; secure boot needs generation 2', () => {
  refusal(() => buildVmConfig({ name: 'x86', generation: 2 }, ctx([], { imageGenerations: [1], sourceImage: 'tiny-x86' })), 'generation', /tiny-x86/);
  refusal(() => buildVmConfig({ name: 'sb', secureBoot: true }, ctx()), 'secureBoot', /generation 2/);
});

test('display limits follow the console: up to 1600x1200', () => {
  assert.deepEqual(buildVmConfig({ name: 'd', display: { width: 1600, height: 1200 } }, ctx()).display, { width: 1600, height: 1200 });
  refusal(() => buildVmConfig({ name: 'd', display: { width: 1920, height: 1080 } }, ctx()), 'display', /1920x1080/);
});

test('updates are checked as a whole and keep the VM unique', () => {
  const a = buildVmConfig({ name: 'a' }, ctx());
  const b = buildVmConfig({ name: 'b' }, ctx([a]));
  refusal(() => applyVmUpdate(b, { name: 'a' }, { host, existing: [a, b] }), 'name', /already exists/);
  const renamed = applyVmUpdate(b, { name: 'b2', processorCount: 2 }, { host, existing: [a, b] });
  assert.equal(renamed.name, 'b2');
  assert.equal(renamed.processors.count, 2);
  assert.equal(b.name, 'b', 'the original is not changed');
});
