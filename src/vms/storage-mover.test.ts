import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { VmConfig } from '../core/index.js';
import { sampleVmConfig } from '../core/vm-config-fixture.js';
import { folderAt, makeFolderLayout, VmStore } from '../store/index.js';
import { VmRecord } from './runtime-record.js';
import { StorageMover } from './storage-mover.js';

/**
 * Recovery of whole-folder moves a crash interrupted, for a VM that is off (the engine's part
 * needs no QEMU then): each stage of the record leads to one consistent place.
 */
const ID = '0b6f8c3e-5d1a-4c4e-9a57-3f2d1e0c9b8a';
const exists = (path: string): Promise<boolean> => stat(path).then(() => true, () => false);

async function setup(t: { after: (fn: () => Promise<void>) => void }) {
  const base = await mkdtemp(join(tmpdir(), 'visor-mover-'));
  t.after(() => rm(base, { recursive: true, force: true }));
  const store = new VmStore(join(base, 'home'));
  const from = await store.createFolders(ID);
  const to = folderAt(join(base, 'away'));
  const config: VmConfig = sampleVmConfig({
    id: ID,
    name: 'web',
    disks: [{ id: 'disk0', controller: 'ide', controllerNumber: 0, location: 0, path: join(from.disksDir, 'web.qcow2'), format: 'qcow2', readOnly: false }],
  });
  await store.save(config);
  await writeFile(join(from.disksDir, 'web.qcow2'), 'old disk');
  await writeFile(join(from.stateDir, 'saved.vmstate'), 'state');
  const record = new VmRecord(config, 'saved', (id) => store.folder(id).dir);
  const mover = new StorageMover({ store, otherFolders: () => [] });
  const save = async (next: VmConfig): Promise<void> => {
    await store.save(next);
    record.config = next;
  };
  const writeRecord = async (phase: 'copying' | 'pivoted', stage: 'disks' | 'folder') => {
    const disk = { diskId: 'disk0', oldPath: config.disks[0]!.path, oldFormat: 'qcow2', newPath: join(to.disksDir, 'web.qcow2'), newFormat: 'qcow2', targetNode: '', sourceNode: '', jobId: '', where: 'qemu', phase };
    await writeFile(join(from.dir, 'storage-move.json'), JSON.stringify({ moveId: 'm', guestWasRunning: false, disks: [disk], folder: { from: from.dir, to: to.dir }, stage }));
  };
  return { store, from, to, record, mover, save, writeRecord };
}

test('a move cut while copying disks is rolled back: the destination goes, the VM stays', async (t) => {
  const { from, to, record, mover, save, writeRecord } = await setup(t);
  await writeRecord('copying', 'disks');
  await makeFolderLayout(to);
  await writeFile(join(to.disksDir, 'web.qcow2'), 'partial');
  await mover.recover(record, save);
  assert.ok(!(await exists(to.dir)), 'the destination the move made is removed');
  assert.equal(record.config.disks[0]!.path, join(from.disksDir, 'web.qcow2'));
  assert.equal(await readFile(join(from.disksDir, 'web.qcow2'), 'utf8'), 'old disk');
  assert.ok(!(await exists(join(from.dir, 'storage-move.json'))));
});

test('a move cut after every disk was copied is finished: state, vm.json, location; old files gone', async (t) => {
  const { store, from, to, record, mover, save, writeRecord } = await setup(t);
  await writeRecord('pivoted', 'disks');
  await makeFolderLayout(to);
  await writeFile(join(to.disksDir, 'web.qcow2'), 'new disk');
  await mover.recover(record, save);
  assert.equal(store.folder(ID).dir, to.dir);
  assert.equal((await readFile(join(from.dir, 'location'), 'utf8')).trim(), to.dir);
  assert.equal(record.config.disks[0]!.path, join(to.disksDir, 'web.qcow2'));
  assert.equal((JSON.parse(await readFile(to.configFile, 'utf8')) as VmConfig).disks[0]!.path, join(to.disksDir, 'web.qcow2'));
  assert.equal(await readFile(join(to.stateDir, 'saved.vmstate'), 'utf8'), 'state', 'the saved state moved');
  assert.deepEqual((await readdir(from.dir)).sort(), ['location'], 'only the location file is left in the registry entry');
});

test('a move cut after the switch only loses its old files', async (t) => {
  const { store, from, to, record, mover, save, writeRecord } = await setup(t);
  await writeRecord('pivoted', 'folder');
  await makeFolderLayout(to);
  await writeFile(join(to.disksDir, 'web.qcow2'), 'new disk');
  await mkdir(to.stateDir, { recursive: true });
  await writeFile(join(to.stateDir, 'saved.vmstate'), 'state');
  const moved = { ...record.config, disks: [{ ...record.config.disks[0]!, path: join(to.disksDir, 'web.qcow2') }] };
  await store.save(moved, to);
  await store.relocate(ID, to.dir);
  record.config = moved;
  await writeFile(join(from.disksDir, 'kept-by-someone.vhdx'), 'not ours');
  await mover.recover(record, save);
  assert.equal(store.folder(ID).dir, to.dir);
  assert.ok(!(await exists(join(from.disksDir, 'web.qcow2'))), 'the old disk is deleted');
  assert.ok(!(await exists(from.configFile)) && !(await exists(from.stateDir)));
  assert.ok(await exists(join(from.disksDir, 'kept-by-someone.vhdx')), 'a file the VM does not use stays');
  assert.equal(await readFile(join(to.disksDir, 'web.qcow2'), 'utf8'), 'new disk');
});
