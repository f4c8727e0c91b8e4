/**
 * Differencing disks: what we write reads the same through libvhdi's vhdimount (QEMU cannot open
 * differencing VHDX), a three-level chain flattens to the expected bytes (checked by QEMU too),
 * merging works, and broken chains fail with a clear code.
 */
import assert from 'node:assert/strict';
import { readFile, rename, unlink } from 'node:fs/promises';
import { describe, test } from 'node:test';
import { quietContext } from '../../core/progress.js';
import type { VisorError } from '../../core/errors.js';
import { flattenChain } from './convert.js';
import { createVhdx } from './create.js';
import { mergeIntoParent } from './maintenance.js';
import { hasTool, randomWrites, run, withScratch, withVhdimount, type Scratch } from './test-support.js';
import { VhdxFile } from './vhdx-file.js';

const MiB = 1024 * 1024;
const VHDIMOUNT = (await hasTool('vhdimount', ['-V'])) && process.getuid?.() === 0;
const QEMU = await hasTool('qemu-img');

/** base (dynamic) ← mid (differencing) ← top (differencing), each with random writes; returns the model. */
async function threeLevelChain(s: Scratch, lss: 512 | 4096, size: number): Promise<{ top: string; model: Buffer; layers: Buffer[] }> {
  const model = Buffer.alloc(size);
  const layers: Buffer[] = [];
  await createVhdx(s.path('base.vhdx'), { type: 'dynamic', size, blockSize: 4 * MiB, logicalSectorSize: lss });
  let f = await VhdxFile.open(s.path('base.vhdx'), { readOnly: false });
  await randomWrites(f, model, { seed: lss + 1, count: 30, maxLength: 6 * MiB });
  await f.close();
  layers.push(Buffer.from(model));
  await createVhdx(s.path('mid.vhdx'), { type: 'differencing', parentPath: s.path('base.vhdx'), blockSize: 1 * MiB });
  f = await VhdxFile.open(s.path('mid.vhdx'), { readOnly: false });
  await randomWrites(f, model, { seed: lss + 2, count: 40, maxLength: 3 * MiB });
  await f.close();
  layers.push(Buffer.from(model));
  await createVhdx(s.path('top.vhdx'), { type: 'differencing', parentPath: s.path('mid.vhdx'), blockSize: 2 * MiB });
  f = await VhdxFile.open(s.path('top.vhdx'), { readOnly: false });
  await randomWrites(f, model, { seed: lss + 3, count: 40, maxLength: 2 * MiB });
  // Sub-sector writes exercise copy-on-write of partial sectors from the parent.
  for (const [pos, len] of [[100, 7], [lss * 3 + 1, lss], [5 * MiB - 3, 9], [size - 5, 5]] as const) {
    const data = Buffer.alloc(len, 0xe7);
    await f.write(data, pos);
    data.copy(model, pos);
  }
  await f.close();
  layers.push(Buffer.from(model));
  return { top: s.path('top.vhdx'), model, layers };
}

for (const lss of [512, 4096] as const) {
  describe(`a three-level differencing chain, ${lss}-byte sectors`, () => {
    test('reads the layered bytes through us and through vhdimount', async (t) => {
      await withScratch(async (s) => {
        const size = 20 * MiB + 3 * lss;
        const { top, model } = await threeLevelChain(s, lss, size);
        const file = await VhdxFile.open(top);
        try {
          assert.equal(file.info.diskType, 'differencing');
          assert.equal(file.parent?.parent?.info.diskType, 'dynamic');
          assert.match(file.info.parentLocator?.relativePath ?? '', /^\.\\mid\.vhdx$/);
          assert.ok((await file.read(0, size)).equals(model), 'our read of the chain differs from the model');
        } finally {
          await file.close();
        }
        if (!VHDIMOUNT) return t.skip('vhdimount not installed or not root');
        const info = await run('vhdiinfo', [top]);
        assert.match(info, /Disk type\s*:\s*Differential/);
        await withVhdimount(top, s.path('mnt'), async (raw) => {
          assert.ok((await readFile(raw)).equals(model), 'vhdimount view of the chain differs from the model');
        });
      });
    });

    test('flattens to a standalone dynamic disk with the same bytes', async () => {
      await withScratch(async (s) => {
        const size = 20 * MiB + 3 * lss;
        const { top, model } = await threeLevelChain(s, lss, size);
        const flat = s.path('flat.vhdx');
        const fractions: number[] = [];
        await flattenChain(top, flat, { signal: new AbortController().signal, progress: (f) => fractions.push(f) });
        assert.equal(fractions.at(-1), 1);
        const file = await VhdxFile.open(flat);
        try {
          assert.equal(file.info.diskType, 'dynamic');
          assert.equal(file.parent, undefined);
          assert.ok((await file.read(0, size)).equals(model));
        } finally {
          await file.close();
        }
        if (lss === 512 && QEMU) {
          assert.match(await run('qemu-img', ['check', '-f', 'vhdx', flat]), /No errors were found/);
          await run('qemu-img', ['convert', '-f', 'vhdx', '-O', 'raw', flat, s.path('flat.raw')]);
          assert.ok((await readFile(s.path('flat.raw'))).equals(model), 'qemu-img reads the flattened disk differently');
        }
      });
    });

    test('merges the top into its parent', async () => {
      await withScratch(async (s) => {
        const size = 20 * MiB + 3 * lss;
        const { top, model } = await threeLevelChain(s, lss, size);
        const parentPath = await mergeIntoParent(top, quietContext());
        assert.equal(parentPath, s.path('mid.vhdx'));
        const mid = await VhdxFile.open(parentPath);
        try {
          assert.ok((await mid.read(0, size)).equals(model), 'the merged parent does not read as the child did');
        } finally {
          await mid.close();
        }
        // The parent changed, so the child's linkage is now stale.
        await assert.rejects(VhdxFile.open(top), (e: VisorError) => e.code === 'vhdx-parent-mismatch');
      });
    });
  });
}

describe('broken chains fail clearly', () => {
  test('a missing parent is vhdx-parent-not-found', async () => {
    await withScratch(async (s) => {
      await createVhdx(s.path('a.vhdx'), { type: 'dynamic', size: 8 * MiB });
      await createVhdx(s.path('b.vhdx'), { type: 'differencing', parentPath: s.path('a.vhdx') });
      await unlink(s.path('a.vhdx'));
      await assert.rejects(VhdxFile.open(s.path('b.vhdx')), (e: VisorError) => e.code === 'vhdx-parent-not-found' && /b\.vhdx/.test(e.message));
      const alone = await VhdxFile.open(s.path('b.vhdx'), { openParent: false });
      await assert.rejects(alone.read(0, 512), (e: VisorError) => e.code === 'vhdx-parent-not-found');
      await alone.close();
    });
  });

  test('a parent written after the child was made is vhdx-parent-mismatch', async () => {
    await withScratch(async (s) => {
      await createVhdx(s.path('a.vhdx'), { type: 'dynamic', size: 8 * MiB });
      await createVhdx(s.path('b.vhdx'), { type: 'differencing', parentPath: s.path('a.vhdx') });
      const a = await VhdxFile.open(s.path('a.vhdx'), { readOnly: false });
      await a.write(Buffer.alloc(512, 1), 0);
      await a.close();
      await assert.rejects(VhdxFile.open(s.path('b.vhdx')), (e: VisorError) => e.code === 'vhdx-parent-mismatch');
    });
  });

  test('a chain that loops is vhdx-parent-loop, not a hang', async () => {
    await withScratch(async (s) => {
      await createVhdx(s.path('a.vhdx'), { type: 'dynamic', size: 8 * MiB });
      await createVhdx(s.path('b.vhdx'), { type: 'differencing', parentPath: s.path('a.vhdx') });
      await createVhdx(s.path('c.vhdx'), { type: 'differencing', parentPath: s.path('b.vhdx') });
      await rename(s.path('c.vhdx'), s.path('a.vhdx')); // now a → b → a
      await assert.rejects(VhdxFile.open(s.path('b.vhdx')), (e: VisorError) => e.code === 'vhdx-parent-loop');
      await assert.rejects(VhdxFile.open(s.path('a.vhdx')), (e: VisorError) => e.code === 'vhdx-parent-loop');
    });
  });

  test('a differencing disk cannot take other sector sizes than its parent', async () => {
    await withScratch(async (s) => {
      await createVhdx(s.path('a.vhdx'), { type: 'dynamic', size: 8 * MiB, logicalSectorSize: 4096 });
      await assert.rejects(
        createVhdx(s.path('b.vhdx'), { type: 'differencing', parentPath: s.path('a.vhdx'), logicalSectorSize: 512 }),
        (e: VisorError) => e.code === 'vhdx-bad-argument',
      );
    });
  });
});
