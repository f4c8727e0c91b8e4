/**
 * Resize and compact, checked by reading back and — for files QEMU can open — by qemu-img check
 * and qemu-img convert.
 */
import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { describe, test } from 'node:test';
import type { VisorError } from '../../core/errors.js';
import { quietContext } from '../../core/progress.js';
import { createVhdx } from './create.js';
import { compactVhdx, resizeVhdx } from './maintenance.js';
import { hasTool, pattern, readAll, run, withScratch } from './test-support.js';
import { VhdxFile } from './vhdx-file.js';

const MiB = 1024 * 1024;
const QEMU = await hasTool('qemu-img');

async function qemuAgrees(path: string, model: Buffer, raw: string): Promise<void> {
  if (!QEMU) return;
  assert.match(await run('qemu-img', ['check', '-f', 'vhdx', path]), /No errors were found/);
  await run('qemu-img', ['convert', '-f', 'vhdx', '-O', 'raw', path, raw]);
  assert.ok((await readFile(raw)).equals(model), 'qemu-img reads different bytes');
}

describe('resizeVhdx', () => {
  test('grows a dynamic disk; the new space reads as zeros', async () => {
    await withScratch(async (s) => {
      const path = s.path('g.vhdx');
      const oldSize = 10 * MiB + 512; // the last block is partial
      await createVhdx(path, { type: 'dynamic', size: oldSize, blockSize: 2 * MiB });
      const data = pattern(3 * MiB, 1);
      const f = await VhdxFile.open(path, { readOnly: false });
      await f.write(data, oldSize - data.length);
      await f.close();
      await resizeVhdx(path, 40 * MiB, quietContext());
      const model = Buffer.alloc(40 * MiB);
      data.copy(model, oldSize - data.length);
      assert.ok((await readAll(path)).equals(model));
      await qemuAgrees(path, model, s.path('g.raw'));
    });
  });

  test('grows past what the BAT region holds by moving the BAT', async () => {
    await withScratch(async (s) => {
      const path = s.path('big.vhdx');
      const GiB = 1024 * MiB;
      await createVhdx(path, { type: 'dynamic', size: 100 * GiB, blockSize: 1 * MiB }); // BAT: 1 MiB region
      let f = await VhdxFile.open(path, { readOnly: false });
      await f.write(Buffer.alloc(8192, 0x5a), 50 * GiB);
      await f.write(Buffer.alloc(8192, 0x5b), 100 * GiB - 8192);
      await f.close();
      await resizeVhdx(path, 200 * GiB, quietContext());
      f = await VhdxFile.open(path, { readOnly: false });
      assert.equal(f.virtualSize, 200 * GiB);
      assert.ok(f.layout.regions.bat.length > 1 * MiB, 'the BAT region grew');
      await f.write(Buffer.alloc(8192, 0x5c), 150 * GiB);
      await f.close();
      f = await VhdxFile.open(path);
      try {
        assert.ok((await f.read(50 * GiB, 8192)).equals(Buffer.alloc(8192, 0x5a)));
        assert.ok((await f.read(100 * GiB - 8192, 8192)).equals(Buffer.alloc(8192, 0x5b)));
        assert.ok((await f.read(150 * GiB, 8192)).equals(Buffer.alloc(8192, 0x5c)));
        assert.ok((await f.read(199 * GiB, 8192)).equals(Buffer.alloc(8192)));
      } finally {
        await f.close();
      }
      if (QEMU) {
        assert.match(await run('qemu-img', ['check', '-f', 'vhdx', path]), /No errors were found/);
        const out = await run('qemu-io', [
          '-f', 'vhdx', '-r',
          '-c', `read -P 0x5a ${50 * GiB} 8k`,
          '-c', `read -P 0x5b ${100 * GiB - 8192} 8k`,
          '-c', `read -P 0x5c ${150 * GiB} 8k`,
          '-c', `read -P 0 ${199 * GiB} 8k`,
          path,
        ]);
        assert.doesNotMatch(out, /verification failed/i, out);
      }
    });
  });

  test('grows a fixed disk and keeps it fully provisioned', async () => {
    await withScratch(async (s) => {
      const path = s.path('f.vhdx');
      await createVhdx(path, { type: 'fixed', size: 6 * MiB, blockSize: 2 * MiB });
      await resizeVhdx(path, 13 * MiB, quietContext());
      const f = await VhdxFile.open(path);
      try {
        assert.equal(f.info.diskType, 'fixed');
        for (let b = 0; b < f.geometry.dataBlockCount; b++) assert.equal(f.blockMapping(b).state, 6, `block ${b}`);
      } finally {
        await f.close();
      }
      await qemuAgrees(path, Buffer.alloc(13 * MiB), s.path('f.raw'));
    });
  });

  test('shrinks over unused space, and refuses to drop data', async () => {
    await withScratch(async (s) => {
      const path = s.path('s.vhdx');
      await createVhdx(path, { type: 'dynamic', size: 32 * MiB, blockSize: 1 * MiB });
      const f = await VhdxFile.open(path, { readOnly: false });
      await f.write(pattern(3 * MiB, 2), 1 * MiB);
      await f.write(Buffer.alloc(1 * MiB), 20 * MiB); // allocated, but zeros
      await f.close();
      await assert.rejects(resizeVhdx(path, 2 * MiB, quietContext()), (e: VisorError) => e.code === 'vhdx-shrink-over-data' && /2097152/.test(e.message));
      await resizeVhdx(path, 8 * MiB, quietContext());
      const model = Buffer.alloc(8 * MiB);
      pattern(3 * MiB, 2).copy(model, 1 * MiB);
      assert.ok((await readAll(path)).equals(model));
      await qemuAgrees(path, model, s.path('s.raw'));
    });
  });
});

describe('compactVhdx', () => {
  test('gives back all-zero blocks and shortens the file without changing what it reads', async () => {
    await withScratch(async (s) => {
      const path = s.path('c.vhdx');
      const size = 32 * MiB;
      await createVhdx(path, { type: 'dynamic', size, blockSize: 1 * MiB });
      const model = Buffer.alloc(size);
      const f = await VhdxFile.open(path, { readOnly: false });
      const data = pattern(12 * MiB, 3);
      await f.write(data, 0);
      data.copy(model, 0);
      for (const block of [2, 3, 5, 9]) {
        await f.write(Buffer.alloc(MiB), block * MiB);
        model.fill(0, block * MiB, (block + 1) * MiB);
      }
      const guid = f.info.dataWriteGuid;
      await f.close();
      const before = (await stat(path)).size;
      const result = await compactVhdx(path, quietContext());
      assert.equal(result.blocksFreed, 4);
      const after = (await stat(path)).size;
      assert.equal(before - after, 4 * MiB, `file went from ${before} to ${after} bytes`);
      assert.ok((await readAll(path)).equals(model));
      const again = await VhdxFile.open(path);
      assert.equal(again.info.dataWriteGuid, guid, 'moving blocks is not a user-visible change (2.2.2)');
      await again.close();
      await qemuAgrees(path, model, s.path('c.raw'));
    });
  });

  test('keeps zeros zero in a differencing disk, and the child linkage of a compacted parent', async () => {
    await withScratch(async (s) => {
      await createVhdx(s.path('p.vhdx'), { type: 'dynamic', size: 8 * MiB, blockSize: 1 * MiB });
      const p = await VhdxFile.open(s.path('p.vhdx'), { readOnly: false });
      await p.write(pattern(8 * MiB, 4), 0);
      await p.write(Buffer.alloc(MiB), 6 * MiB); // a zero block in the parent
      await p.close();
      await createVhdx(s.path('d.vhdx'), { type: 'differencing', parentPath: s.path('p.vhdx'), blockSize: 1 * MiB });
      const d = await VhdxFile.open(s.path('d.vhdx'), { readOnly: false });
      await d.write(Buffer.alloc(MiB), 2 * MiB); // zeros over parent data
      await d.close();
      const expected = await readAll(s.path('d.vhdx'));
      assert.equal((await compactVhdx(s.path('d.vhdx'), quietContext())).blocksFreed, 1);
      assert.ok((await readAll(s.path('d.vhdx'))).equals(expected), 'the child shows parent data where it had zeros');
      assert.equal((await compactVhdx(s.path('p.vhdx'), quietContext())).blocksFreed, 1);
      assert.ok((await readAll(s.path('d.vhdx'))).equals(expected), 'compacting the parent broke the child');
    });
  });

  test('refuses a fixed disk', async () => {
    await withScratch(async (s) => {
      await createVhdx(s.path('f.vhdx'), { type: 'fixed', size: 4 * MiB, blockSize: 1 * MiB });
      await assert.rejects(compactVhdx(s.path('f.vhdx'), quietContext()), (e: VisorError) => e.code === 'vhdx-bad-argument');
    });
  });
});
