/**
 * convertToRaw against `qemu-img convert -O raw` and against a differencing chain's model:
 * same bytes, sparse output, progress that ends at 1, and cancellation that leaves nothing.
 */
import assert from 'node:assert/strict';
import { access, readFile, stat } from 'node:fs/promises';
import { describe, test } from 'node:test';
import type { VisorError } from '../../core/errors.js';
import { quietContext } from '../../core/progress.js';
import { convertToRaw } from './convert.js';
import { createVhdx } from './create.js';
import { hasTool, pattern, randomWrites, run, withScratch } from './test-support.js';
import { VhdxFile } from './vhdx-file.js';

const MiB = 1024 * 1024;
const QEMU = (await hasTool('qemu-img')) && (await hasTool('qemu-io'));

describe('convertToRaw', () => {
  test('gives the bytes qemu-img convert gives, sparse', { skip: !QEMU && 'qemu-img not installed' }, async () => {
    await withScratch(async (s) => {
      const image = s.path('q.vhdx');
      await run('qemu-img', ['create', '-q', '-f', 'vhdx', '-o', 'block_size=8M', image, '96M']);
      await run('qemu-io', ['-f', 'vhdx', '-c', 'write -P 0x71 3M 10M', '-c', 'write -z 5M 1M', '-c', 'write -P 0x72 60M 4k', '-c', 'write -P 0x73 95M 1M', image]);
      await run('qemu-img', ['convert', '-f', 'vhdx', '-O', 'raw', image, s.path('qemu.raw')]);
      const fractions: number[] = [];
      await convertToRaw(image, s.path('ours.raw'), { signal: new AbortController().signal, progress: (f) => fractions.push(f) });
      assert.ok((await readFile(s.path('ours.raw'))).equals(await readFile(s.path('qemu.raw'))));
      const st = await stat(s.path('ours.raw'));
      assert.equal(st.size, 96 * MiB);
      assert.ok(st.blocks * 512 <= 14 * MiB, `output should be sparse: ${st.blocks * 512} bytes allocated`);
      assert.deepEqual([...fractions].sort((a, b) => a - b), fractions, 'progress never goes back');
      assert.equal(fractions.at(-1), 1);
    });
  });

  test('reads a differencing chain through its parents', async () => {
    await withScratch(async (s) => {
      const size = 24 * MiB;
      const model = Buffer.alloc(size);
      await createVhdx(s.path('base.vhdx'), { type: 'dynamic', size, blockSize: 2 * MiB });
      const base = await VhdxFile.open(s.path('base.vhdx'), { readOnly: false });
      await randomWrites(base, model, { seed: 11, count: 20, maxLength: 4 * MiB });
      await base.close();
      await createVhdx(s.path('child.vhdx'), { type: 'differencing', parentPath: s.path('base.vhdx'), blockSize: 1 * MiB });
      const child = await VhdxFile.open(s.path('child.vhdx'), { readOnly: false });
      await randomWrites(child, model, { seed: 12, count: 30, maxLength: 2 * MiB });
      await child.close();
      await convertToRaw(s.path('child.vhdx'), s.path('child.raw'), quietContext(), { sync: true });
      assert.ok((await readFile(s.path('child.raw'))).equals(model));
    });
  });

  test('cancelled, it throws a cancellation and leaves no output', async () => {
    await withScratch(async (s) => {
      await createVhdx(s.path('d.vhdx'), { type: 'dynamic', size: 64 * MiB, blockSize: 1 * MiB });
      const f = await VhdxFile.open(s.path('d.vhdx'), { readOnly: false });
      await f.write(pattern(40 * MiB, 1), 0);
      await f.close();
      const controller = new AbortController();
      const ctx = { signal: controller.signal, progress: () => controller.abort() };
      await assert.rejects(convertToRaw(s.path('d.vhdx'), s.path('d.raw'), ctx), (e: VisorError) => e.kind === 'cancelled');
      await assert.rejects(access(s.path('d.raw')));
    });
  });
});
