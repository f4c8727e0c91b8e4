/**
 * One damaged file per way a VHDX can be wrong, each failing with its own code, naming the file
 * and quoting the value — and a read-only open of a damaged file never changes it.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { describe, test } from 'node:test';
import { VisorError } from '../../core/errors.js';
import { writeGuid } from './guid.js';
import { fixHeaderChecksums, fixRegionChecksums, sampleFile, withScratch } from './test-support.js';
import { VhdxFile } from './vhdx-file.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const H1 = 64 * KiB;
const H2 = 128 * KiB;
const RT1 = 192 * KiB;
const RT2 = 256 * KiB;
const META = 2 * MiB; // where createVhdx puts the metadata region
const ITEMS = META + 64 * KiB; // File Parameters, Virtual Disk Size, ID, logical, physical
const BAT = 3 * MiB;

interface Case {
  name: string;
  code: string;
  damage: (buf: Buffer) => Buffer;
  message?: RegExp;
}

const cases: Case[] = [
  { name: 'an empty file', code: 'vhdx-truncated', damage: () => Buffer.alloc(0) },
  { name: 'a text file', code: 'vhdx-bad-signature', damage: () => Buffer.from('hello, world\n'.repeat(100)), message: /"hello, w"/ },
  { name: 'a file cut inside the header section', code: 'vhdx-truncated', damage: (b) => b.subarray(0, 300 * KiB) },
  { name: 'a file cut inside the BAT', code: 'vhdx-truncated', damage: (b) => b.subarray(0, BAT + 4 * KiB), message: /BAT region ends/ },
  {
    name: 'both headers with bad checksums',
    code: 'vhdx-no-valid-header',
    damage: (b) => (b.writeUInt32LE(0x12345678, H1 + 4), b.writeUInt32LE(0x12345678, H2 + 4), b),
    message: /0x12345678/,
  },
  { name: 'both headers with a wrong signature', code: 'vhdx-no-valid-header', damage: (b) => (b.write('HEAD', H1), b.write('HEAD', H2), b) },
  { name: 'header version 2', code: 'vhdx-unsupported-version', damage: (b) => (b.writeUInt16LE(2, H1 + 66), b.writeUInt16LE(2, H2 + 66), fixHeaderChecksums(b), b) },
  { name: 'a log not on a 1 MiB boundary', code: 'vhdx-bad-log-location', damage: (b) => (b.writeBigUInt64LE(BigInt(MiB + 4096), H1 + 72), b.writeBigUInt64LE(BigInt(MiB + 4096), H2 + 72), fixHeaderChecksums(b), b) },
  { name: 'both region tables with bad checksums', code: 'vhdx-bad-checksum', damage: (b) => (b[RT1 + 100]! ^= 1, b[RT2 + 100]! ^= 1, b) },
  {
    name: 'an unknown required region',
    code: 'vhdx-unknown-required-region',
    damage: (b) => {
      for (const at of [RT1, RT2]) {
        b.writeUInt32LE(3, at + 8);
        writeGuid(b, at + 16 + 64, '11111111-2222-3333-4444-555555555555');
        b.writeBigUInt64LE(BigInt(100 * MiB), at + 16 + 64 + 16);
        b.writeUInt32LE(MiB, at + 16 + 64 + 24);
        b.writeUInt32LE(1, at + 16 + 64 + 28);
      }
      fixRegionChecksums(b);
      return b;
    },
  },
  { name: 'a region table with 5000 entries', code: 'vhdx-bad-region-table', damage: (b) => (b.writeUInt32LE(5000, RT1 + 8), b.writeUInt32LE(5000, RT2 + 8), fixRegionChecksums(b), b), message: /5000/ },
  {
    name: 'the BAT region overlapping the metadata region',
    code: 'vhdx-region-overlap',
    damage: (b) => (b.writeBigUInt64LE(BigInt(META), RT1 + 16 + 16), b.writeBigUInt64LE(BigInt(META), RT2 + 16 + 16), fixRegionChecksums(b), b),
  },
  { name: 'a wrong metadata signature', code: 'vhdx-bad-signature', damage: (b) => (b.write('METADATA', META), b), message: /"METADATA"/ },
  { name: 'a 3 MiB block size', code: 'vhdx-bad-block-size', damage: (b) => (b.writeUInt32LE(3 * MiB, ITEMS), b), message: /3145728/ },
  { name: 'a 2^50-byte virtual size', code: 'vhdx-absurd-size', damage: (b) => (b.writeBigUInt64LE(2n ** 50n, ITEMS + 8), b), message: /1125899906842624/ },
  { name: 'a zero virtual size', code: 'vhdx-absurd-size', damage: (b) => (b.writeBigUInt64LE(0n, ITEMS + 8), b) },
  { name: 'a 1000-byte logical sector', code: 'vhdx-bad-sector-size', damage: (b) => (b.writeUInt32LE(1000, ITEMS + 32), b), message: /1000/ },
  { name: 'a virtual size the BAT cannot hold', code: 'vhdx-bat-too-small', damage: (b) => (b.writeBigUInt64LE(2n ** 40n, ITEMS + 8), b) },
  { name: 'a missing metadata item', code: 'vhdx-missing-metadata', damage: (b) => (b.writeUInt16LE(4, META + 10), b) },
  { name: 'a block past the end of the file', code: 'vhdx-bat-out-of-range', damage: (b) => (b.writeBigUInt64LE((9999n << 20n) | 6n, BAT + 8 * 5), b), message: /10484711424/ },
  { name: 'a block inside the header section', code: 'vhdx-bat-out-of-range', damage: (b) => (b.writeBigUInt64LE(6n, BAT + 8 * 5), b) },
  { name: 'a PARTIALLY_PRESENT block in a dynamic disk', code: 'vhdx-bad-bat-entry', damage: (b) => (b.writeBigUInt64LE((b.readBigUInt64LE(BAT + 8) & ~7n) | 7n, BAT + 8), b) },
  { name: 'a reserved payload state', code: 'vhdx-bad-bat-entry', damage: (b) => (b.writeBigUInt64LE(5n, BAT + 8 * 6), b) },
  { name: 'two blocks at the same offset', code: 'vhdx-bat-overlap', damage: (b) => (b.writeBigUInt64LE(b.readBigUInt64LE(BAT + 8), BAT + 8 * 6), b) },
  { name: 'a block over the metadata region', code: 'vhdx-bat-overlap', damage: (b) => (b.writeBigUInt64LE((2n << 20n) | 6n, BAT + 8 * 6), b), message: /metadata region/ },
];

describe('damaged files fail with a specific VisorError and are left untouched', () => {
  for (const c of cases) {
    test(c.name, async () => {
      await withScratch(async (s) => {
        const path = s.path('damaged.vhdx');
        await sampleFile(path);
        const damaged = c.damage(await readFile(path));
        await writeFile(path, damaged);
        await assert.rejects(VhdxFile.open(path), (e: unknown) => {
          assert.ok(e instanceof VisorError, `not a VisorError: ${String(e)}`);
          assert.equal(e.code, c.code, e.message);
          assert.ok(e.message.includes(path), `the message names the file: ${e.message}`);
          if (c.message) assert.match(e.message, c.message);
          return true;
        });
        assert.ok((await readFile(path)).equals(damaged), 'a read-only open wrote to the file');
      });
    });
  }

  test('one damaged header or region table is survived by using the other copy', async () => {
    await withScratch(async (s) => {
      const path = s.path('half.vhdx');
      await sampleFile(path);
      const good = await VhdxFile.open(path);
      const expected = await good.read(0, good.virtualSize);
      await good.close();
      const buf = await readFile(path);
      buf[H2 + 200]! ^= 0xff; // createVhdx's current header is in slot 2
      buf[RT1 + 300]! ^= 0xff;
      await writeFile(path, buf);
      const f = await VhdxFile.open(path);
      assert.ok((await f.read(0, f.virtualSize)).equals(expected));
      await f.close();
    });
  });

  test('reads and writes outside the disk, and writes on a read-only open, are refused', async () => {
    await withScratch(async (s) => {
      const path = s.path('ok.vhdx');
      await sampleFile(path);
      const f = await VhdxFile.open(path);
      await assert.rejects(f.read(8 * MiB - 1, 2), (e: VisorError) => e.code === 'vhdx-out-of-range');
      await assert.rejects(f.read(-1, 1), (e: VisorError) => e.code === 'vhdx-out-of-range');
      await assert.rejects(f.write(Buffer.alloc(1), 0), (e: VisorError) => e.code === 'vhdx-read-only');
      await f.close();
      await assert.rejects(f.read(0, 1), (e: VisorError) => e.code === 'vhdx-closed');
    });
  });
});
