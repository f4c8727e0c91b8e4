import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { VisorError, VmConfig } from '../core/index.js';
import { chooseSlot, nextDiskId } from './disk-slots.js';

const vm = (generation: 1 | 2, disks: Array<[VmConfig['disks'][number]['controller'], number, number]>, dvd: VmConfig['dvd'] = null): VmConfig =>
  ({
    name: 'g',
    generation,
    dvd,
    disks: disks.map(([controller, controllerNumber, location], i) => ({ id: `disk${i}`, controller, controllerNumber, location, path: `/d${i}`, format: 'raw', readOnly: false })),
  }) as unknown as VmConfig;

test('a slot left out is the first free one, past the DVD drive', () => {
  const config = vm(1, [['ide', 0, 0]], { controller: 'ide', controllerNumber: 1, location: 0, iso: null });
  assert.deepEqual(chooseSlot(config, { controller: 'ide' }), { controllerNumber: 0, location: 1 });
  const full = vm(1, [['ide', 0, 0], ['ide', 0, 1]], { controller: 'ide', controllerNumber: 1, location: 0, iso: null });
  assert.deepEqual(chooseSlot(full, { controller: 'ide' }), { controllerNumber: 1, location: 1 });
  assert.deepEqual(chooseSlot(full, { controller: 'scsi' }), { controllerNumber: 0, location: 0 });
  assert.deepEqual(chooseSlot(full, { controller: 'scsi', location: 5 }), { controllerNumber: 0, location: 5 });
});

test('taken, missing and impossible slots are refused with the field', () => {
  const config = vm(1, [['ide', 0, 0], ['ide', 0, 1], ['ide', 1, 0], ['ide', 1, 1]]);
  assert.throws(() => chooseSlot(config, { controller: 'ide' }), (e: VisorError) => e.code === 'no-free-slot');
  assert.throws(() => chooseSlot(config, { controller: 'ide', controllerNumber: 0, location: 1 }), (e: VisorError) => e.code === 'slot-taken');
  assert.throws(() => chooseSlot(config, { controller: 'scsi', controllerNumber: 4 }), (e: VisorError) => e.field === 'controllerNumber');
  assert.throws(() => chooseSlot(vm(2, []), { controller: 'ide' }), (e: VisorError) => e.field === 'controller');
});

test('disk ids fill the first gap', () => {
  assert.equal(nextDiskId(vm(1, [['ide', 0, 0], ['ide', 0, 1]])), 'disk2');
});
