/**
 * Our reader and writer against QEMU as the oracle: files QEMU makes read the same through us as
 * through `qemu-img convert -O raw`; files we make pass `qemu-img check` and read the same
 * through QEMU. QEMU opens only 512-byte logical sectors; 4096-byte ones go to libvhdi.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';
import { createVhdx } from './create.js';
import { hasTool, pattern, prng, randomWrites, run, withScratch, withVhdimount } from './test-support.js';
import { VhdxFile } from './vhdx-file.js';

const MiB = 1024 * 1024;
const QEMU = (await hasTool('qemu-img')) && (await hasTool('qemu-io'));
const VHDIMOUNT = (await hasTool('vhdimount', ['-V'])) && process.getuid?.() === 0;

async function qemuRaw(image: string, out: string): Promise<Buffer> {
  await run('qemu-img', ['convert', '-f', 'vhdx', '-O', 'raw', image, out]);
  return readFile(out);
}

describe('VHDX files made by QEMU read like qemu-img convert', { skip: !QEMU && 'qemu-img/qemu-io not installed' }, () => {
  const cases: [string, string][] = [
    ['dynamic', '1M'],
    ['dynamic', '8M'],
    ['dynamic', '32M'],
    ['dynamic', '256M'],
    ['fixed', '1M'],
    ['fixed', '8M'],
  ];
  for (const [subformat, blockSize] of cases) {
    test(`${subformat}, block size ${blockSize}`, async () => {
      await withScratch(async (s) => {
        const image = s.path('q.vhdx');
        const size = 40 * MiB;
        await run('qemu-img', ['create', '-q', '-f', 'vhdx', '-o', `subformat=${subformat},block_size=${blockSize}`, image, String(size)]);
        await run('qemu-io', [
          '-f', 'vhdx',
          '-c', 'write -P 0x11 0 1M',
          '-c', 'write -P 0x22 1536k 1M', //        crosses a 1 MiB block boundary
          '-c', 'write -P 0x33 7340032 512', //      one sector
          '-c', 'write -P 0x44 16775680 8M', //      crosses 8 MiB and 16 MiB boundaries, unaligned to blocks
          '-c', 'write -P 0x55 41942528 512', //     the last sector
          '-c', 'write -z 1M 256k', //               zeros over data
          '-c', 'write -P 0x66 33554432 64k', //     the first bytes of the second 32 MiB block
          image,
        ]);
        const expected = await qemuRaw(image, s.path('q.raw'));
        const file = await VhdxFile.open(image);
        try {
          assert.equal(file.info.creator.startsWith('QEMU'), true);
          assert.equal(file.info.diskType, subformat === 'fixed' ? 'fixed' : 'dynamic');
          assert.equal(file.virtualSize, size);
          const whole = await file.read(0, size);
          assert.ok(whole.equals(expected), 'whole-disk read differs from qemu-img convert');
          const rand = prng(7);
          for (let i = 0; i < 200; i++) {
            const length = 1 + Math.floor(rand() * 3 * MiB);
            const position = Math.floor(rand() * (size - length));
            const got = await file.read(position, length);
            assert.ok(got.equals(expected.subarray(position, position + length)), `read ${position}+${length} differs`);
          }
        } finally {
          await file.close();
        }
        // Then we write into QEMU's file, and QEMU must still accept it and read our writes.
        const model = Buffer.from(expected);
        const rw = await VhdxFile.open(image, { readOnly: false });
        await randomWrites(rw, model, { seed: 31, count: 25, maxLength: 3 * MiB });
        await rw.close();
        assert.match(await run('qemu-img', ['check', '-f', 'vhdx', image]), /No errors were found/);
        assert.ok((await qemuRaw(image, s.path('q2.raw'))).equals(model), 'QEMU reads our writes into its file differently');
      });
    });
  }
});

describe('VHDX files we write pass qemu-img check and read the same through QEMU', { skip: !QEMU && 'qemu-img not installed' }, () => {
  const cases: ['fixed' | 'dynamic', number][] = [
    ['dynamic', 1 * MiB],
    ['dynamic', 8 * MiB],
    ['dynamic', 32 * MiB],
    ['dynamic', 256 * MiB],
    ['fixed', 1 * MiB],
    ['fixed', 4 * MiB],
  ];
  for (const [type, blockSize] of cases) {
    test(`${type}, block size ${blockSize / MiB} MiB, 512-byte sectors`, async () => {
      await withScratch(async (s) => {
        const image = s.path('ours.vhdx');
        const size = 40 * MiB + 7 * 512; // not a whole number of blocks
        await createVhdx(image, { type, size, blockSize, logicalSectorSize: 512 });
        const model = Buffer.alloc(size);
        let file = await VhdxFile.open(image, { readOnly: false });
        await randomWrites(file, model, { seed: blockSize + (type === 'fixed' ? 1 : 0), count: 60, maxLength: Math.min(3 * blockSize, 8 * MiB) });
        await file.close();
        // Reopen and write some more: the second session must update headers and log again.
        file = await VhdxFile.open(image, { readOnly: false });
        await randomWrites(file, model, { seed: 99, count: 20, maxLength: MiB });
        await file.write(pattern(size - (size - 512), 5), size - 512);
        pattern(512, 5).copy(model, size - 512);
        await file.close();
        const check = await run('qemu-img', ['check', '-f', 'vhdx', image]);
        assert.match(check, /No errors were found/);
        assert.ok((await qemuRaw(image, s.path('ours.raw'))).equals(model), 'qemu-img convert differs from what we wrote');
        const again = await VhdxFile.open(image);
        try {
          assert.ok((await again.read(0, size)).equals(model), 'our read differs from what we wrote');
        } finally {
          await again.close();
        }
      });
    });
  }
});

describe('VHDX files with 4096-byte sectors read the same through libvhdi', { skip: !VHDIMOUNT && 'vhdimount not installed or not root' }, () => {
  for (const type of ['dynamic', 'fixed'] as const) {
    test(`${type}, 4096-byte logical sectors`, async () => {
      await withScratch(async (s) => {
        const image = s.path('4k.vhdx');
        const size = 24 * MiB;
        await createVhdx(image, { type, size, blockSize: 2 * MiB, logicalSectorSize: 4096 });
        const model = Buffer.alloc(size);
        const file = await VhdxFile.open(image, { readOnly: false });
        await randomWrites(file, model, { seed: 4096, count: 40, maxLength: 5 * MiB });
        await file.close();
        const info = await run('vhdiinfo', [image]);
        assert.match(info, /Bytes per sector\s*:\s*4096/);
        await withVhdimount(image, s.path('mnt'), async (raw) => {
          assert.ok((await readFile(raw)).equals(model), 'vhdimount view differs from what we wrote');
        });
      });
    });
  }
});
