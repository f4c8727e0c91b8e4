import assert from 'node:assert/strict';
import { mkdir, readFile, rename, stat } from 'node:fs/promises';
import { test } from 'node:test';
import { VisorError } from '../../core/errors.js';
import { quietContext } from '../../core/progress.js';
import { convertToRaw, createVhd, flattenChain, mergeIntoParent, VhdFile } from './index.js';
import { firstDifference, pattern, prng, qemuRaw, readAll, run, type Scratch, withScratch, withVhdimount } from './test-support.js';

const MiB = 1024 * 1024;
const SIZE = 12 * MiB;

async function writeModel(path: string, model: Buffer, writes: readonly [number, number][], seed: number): Promise<void> {
  const f = await VhdFile.open(path, { readOnly: false });
  try {
    for (const [i, [pos, len]] of writes.entries()) {
      const data = pattern(len, seed + i);
      await f.write(data, pos);
      data.copy(model, pos);
    }
  } finally {
    await f.close();
  }
}

function randomWrites(seed: number, count: number): [number, number][] {
  const rand = prng(seed);
  const out: [number, number][] = [];
  for (let i = 0; i < count; i++) {
    const pos = Math.floor(rand() * SIZE);
    out.push([pos, Math.max(1, Math.floor(rand() * Math.min(400_000, SIZE - pos)))]);
  }
  return out;
}

/** base (dynamic) <- mid <- top, each with its own writes; returns the expected view of each. */
async function makeChain(s: Scratch): Promise<{ base: string; mid: string; top: string; models: Buffer[] }> {
  const base = s.path('base.vhd');
  const mid = s.path('mid.vhd');
  const top = s.path('top.vhd');
  const model = Buffer.alloc(SIZE);
  await createVhd(base, { type: 'dynamic', size: SIZE });
  await writeModel(base, model, [[MiB, 3 * MiB], [7 * MiB + 5, 100_000], ...randomWrites(1, 10)], 10);
  const m0 = Buffer.from(model);
  await createVhd(mid, { type: 'differencing', parentPath: base });
  await writeModel(mid, model, [[0, 1], [2 * MiB - 10, 20], [5 * MiB, 2 * MiB], ...randomWrites(2, 15)], 20);
  const m1 = Buffer.from(model);
  await createVhd(top, { type: 'differencing', parentPath: mid });
  await writeModel(top, model, [[3 * MiB + 511, 2], [SIZE - 700, 700], ...randomWrites(3, 15)], 30);
  return { base, mid, top, models: [m0, m1, Buffer.from(model)] };
}

test('a differencing disk reads its own sectors and its parent\'s, and libvhdi\'s vhdimount agrees byte for byte', async () => {
  await withScratch(async (s) => {
    const { base, mid, models } = await makeChain(s);
    assert.ok((await readAll(base)).equals(models[0]!));
    assert.ok((await readAll(mid)).equals(models[1]!));
    const f = await VhdFile.open(mid);
    assert.equal(f.info.diskType, 'differencing');
    assert.equal(f.parent?.info.uniqueId, f.info.parentUniqueId);
    assert.deepEqual(
      f.info.parentLocators.map((l) => l.platform),
      ['W2ru', 'W2ku', 'MacX'],
    );
    await f.close();
    await withVhdimount(mid, s.path('mnt'), async (raw) => {
      assert.equal(firstDifference(await readFile(raw), models[1]!), undefined);
    });
    // vhdiinfo names the parent we recorded.
    const info = await run('vhdiinfo', [mid]);
    assert.match(info, /Disk type\s*: Differential/);
    assert.match(info, /Parent filename\s*: base\.vhd/);
    // QEMU opens a differencing VHD ignoring its parent: it sees only the child's own sectors.
    const qemuView = await qemuRaw(mid, s);
    assert.equal(qemuView.length, SIZE);
  });
});

test('a 3-level chain written by us flattens (and converts to raw) to the expected bytes', async () => {
  await withScratch(async (s) => {
    const { top, models } = await makeChain(s);
    const expected = models[2]!;
    assert.ok((await readAll(top)).equals(expected));
    await withVhdimount(top, s.path('mnt'), async (raw) => {
      assert.equal(firstDifference(await readFile(raw), expected), undefined);
    });
    const flat = s.path('flat.vhd');
    await flattenChain(top, flat, quietContext());
    const ff = await VhdFile.open(flat);
    assert.equal(ff.info.diskType, 'dynamic');
    await ff.close();
    assert.equal(firstDifference(await qemuRaw(flat, s), expected), undefined, 'qemu-img reads the flattened file');
    const raw = s.path('top.raw');
    await convertToRaw(top, raw, quietContext());
    assert.equal(firstDifference(await readFile(raw), expected), undefined);
  });
});

test('the parent is found through the relative locator after the pair moves together', async () => {
  await withScratch(async (s) => {
    const { base, mid, models } = await makeChain(s);
    await mkdir(s.path('moved/sub'), { recursive: true });
    await rename(base, s.path('moved/base.vhd'));
    await rename(mid, s.path('moved/mid.vhd'));
    assert.ok((await readAll(s.path('moved/mid.vhd'))).equals(models[1]!));
  });
});

test('parent mismatch, parent not found and a parent loop are refused with their codes', async () => {
  await withScratch(async (s) => {
    const { base, mid, top } = await makeChain(s);
    // A different disk under the parent's name: its unique id differs.
    await rename(base, s.path('real-base.vhd'));
    await createVhd(base, { type: 'dynamic', size: SIZE });
    await assert.rejects(VhdFile.open(mid), (e: unknown) => e instanceof VisorError && e.code === 'vhd-parent-mismatch' && /unique id/.test(e.message));
    await rename(base, s.path('other.vhd'));
    await assert.rejects(VhdFile.open(mid), (e: unknown) => e instanceof VisorError && e.code === 'vhd-parent-not-found');
    // Opening without the parent works; reads that need it refuse.
    const lone = await VhdFile.open(mid, { openParent: false });
    await assert.rejects(lone.read(0, SIZE), (e: unknown) => e instanceof VisorError && e.code === 'vhd-parent-not-found');
    await lone.close();
    // A loop: base.vhd becomes a child of top.vhd, whose chain leads back to base.vhd.
    await rename(s.path('real-base.vhd'), base);
    const loop = s.path('loop.vhd');
    await createVhd(loop, { type: 'differencing', parentPath: top });
    await rename(loop, base);
    await assert.rejects(VhdFile.open(top), (e: unknown) => e instanceof VisorError && e.code === 'vhd-parent-loop');
  });
});

test('merging a child into its parent makes the parent read as the child did', async () => {
  await withScratch(async (s) => {
    const { mid, top, models } = await makeChain(s);
    const parentPath = await mergeIntoParent(top, quietContext());
    assert.equal(parentPath, mid);
    await assert.rejects(stat(top));
    assert.ok((await readAll(mid)).equals(models[2]!));
    await withVhdimount(mid, s.path('mnt'), async (raw) => {
      assert.equal(firstDifference(await readFile(raw), models[2]!), undefined);
    });
    // Merge the rest into the dynamic base: QEMU now sees the whole disk.
    const base = await mergeIntoParent(mid, quietContext());
    assert.equal(firstDifference(await qemuRaw(base, s), models[2]!), undefined);
  });
});
