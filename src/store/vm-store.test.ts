import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { VmConfig } from '../core/index.js';
import { sampleVmConfig } from '../core/vm-config-fixture.js';
import { folderAt, makeFolderLayout, VmStore } from './vm-store.js';

function config(id: string, name: string): VmConfig {
  return sampleVmConfig({ id, name });
}

const A = '0b6f8c3e-5d1a-4c4e-9a57-3f2d1e0c9b8a';
const B = '1c7f9d4f-6e2b-4d5f-8b68-4a3e2f1d0c9b';

const gone = (path: string): Promise<boolean> => stat(path).then(() => false, () => true);

test('a VM relocated by its location file is found there by a new store, and removed with it', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'visor-store-'));
  t.after(() => rm(base, { recursive: true, force: true }));
  const home = join(base, 'home');
  const store = new VmStore(home);
  await store.createFolders(A);
  await store.save(config(A, 'alpha'));
  await store.createFolders(B);
  await store.save(config(B, 'beta'));

  // The caller copies the folder, then switches: one write of the location file.
  const elsewhere = folderAt(join(base, 'elsewhere', 'alpha'));
  await makeFolderLayout(elsewhere);
  await store.save({ ...config(A, 'alpha'), notes: 'moved' }, elsewhere);
  const now = await store.relocate(A, elsewhere.dir);
  assert.equal(now.dir, elsewhere.dir);
  assert.equal((await readFile(join(home, 'vms', A, 'location'), 'utf8')).trim(), elsewhere.dir);

  const fresh = new VmStore(home);
  const { vms, broken, unfinished } = await fresh.loadAll();
  assert.deepEqual(broken, []);
  assert.deepEqual(unfinished, []);
  assert.equal(vms.find((v) => v.id === A)?.notes, 'moved', 'loaded from the folder the location file names');
  assert.equal(fresh.folder(A).dir, elsewhere.dir);
  assert.equal(fresh.folder(B).dir, join(home, 'vms', B));

  // Back home: the location file goes.
  await fresh.relocate(A, fresh.registryDir(A));
  assert.ok(await gone(join(home, 'vms', A, 'location')));
  assert.equal(fresh.folder(A).dir, join(home, 'vms', A));

  await fresh.relocate(A, elsewhere.dir);
  await writeFile(join(elsewhere.disksDir, 'alpha.qcow2'), 'disk');
  await fresh.remove(A);
  assert.ok(await gone(elsewhere.dir), 'the folder the VM lived in is removed');
  assert.ok(await gone(join(home, 'vms', A)), 'and its registry entry');
  assert.deepEqual(await readdir(join(home, 'vms')), [B]);
});

test('a location file that names no absolute folder marks the VM broken, not lost', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'visor-store-'));
  t.after(() => rm(base, { recursive: true, force: true }));
  const store = new VmStore(base);
  await store.createFolders('c');
  await writeFile(join(base, 'vms', 'c', 'location'), 'relative/path\n');
  const { vms, broken } = await store.loadAll();
  assert.deepEqual(vms, []);
  assert.equal(broken.length, 1);
  assert.match(broken[0]!.error, /absolute folder/);
});

test('sweep finishes a delete cut short, including the folder a moved VM lived in', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'visor-store-'));
  t.after(() => rm(base, { recursive: true, force: true }));
  const store = new VmStore(join(base, 'home'));
  const away = folderAt(join(base, 'away'));
  await makeFolderLayout(away);
  await store.createFolders('d');
  await writeFile(join(base, 'home', 'vms', 'd', 'location'), `${away.dir}\n`);
  // A crash right after the rename aside.
  await rename(join(base, 'home', 'vms', 'd'), join(base, 'home', 'vms', '.deleted-d'));
  await store.sweep();
  assert.ok(await gone(away.dir));
  assert.deepEqual(await readdir(join(base, 'home', 'vms')), []);
});
