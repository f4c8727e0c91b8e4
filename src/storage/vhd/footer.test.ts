import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { VisorError } from '../../core/errors.js';
import { chsGeometry, encodeFooter, FOOTER_SIZE, geometrySize, parseFooter, vhdChecksum, OFF_CHECKSUM, type VhdFooter } from './footer.js';
import { decodeUtf16Be, encodeDynamicHeader, encodeUtf16Be, parseDynamicHeader } from './dynamic-header.js';
import { bitmapSize, runLength, setBits, testBit } from './sector-bitmap.js';
import { run, withScratch } from './test-support.js';

const sample: VhdFooter = {
  features: 2,
  dataOffset: 512,
  timestamp: 123456,
  creatorApplication: 'win ',
  creatorVersion: 0xa0000,
  creatorHostOs: 0x5769326b,
  originalSize: 10 * 1024 * 1024,
  currentSize: 10 * 1024 * 1024,
  geometry: chsGeometry(10 * 1024 * 1024),
  diskType: 'dynamic',
  uniqueId: '00112233445566778899aabbccddeeff',
  savedState: false,
};

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof VisorError, `expected a VisorError, got ${String(error)}`);
    return error.code;
  }
  assert.fail('expected an error');
}

test('footer: encode/parse round trip with a valid one\'s-complement checksum', () => {
  const buf = encodeFooter(sample);
  assert.equal(buf.length, FOOTER_SIZE);
  assert.equal(buf.subarray(0, 8).toString('latin1'), 'conectix');
  assert.equal(buf.readUInt32BE(OFF_CHECKSUM), vhdChecksum(buf, OFF_CHECKSUM));
  assert.deepEqual(parseFooter(buf), sample);
});

test('footer: each way a footer can be wrong has its own code, quoting the value', () => {
  const bad = (mutate: (b: Buffer) => void, fixChecksum = true) => {
    const b = encodeFooter(sample);
    mutate(b);
    if (fixChecksum) b.writeUInt32BE(vhdChecksum(b, OFF_CHECKSUM), OFF_CHECKSUM);
    return () => parseFooter(b);
  };
  assert.equal(code(bad((b) => b.write('conectiX', 0, 'latin1'))), 'vhd-bad-cookie');
  assert.equal(code(bad((b) => (b[100] = 1), false)), 'vhd-bad-checksum');
  assert.equal(code(bad((b) => b.writeUInt32BE(0x20000, 12))), 'vhd-unsupported-version');
  assert.equal(code(bad((b) => b.writeUInt32BE(5, 60))), 'vhd-unsupported-type');
  assert.equal(code(bad((b) => b.writeBigUInt64BE(0n, 48))), 'vhd-absurd-size');
  assert.equal(code(bad((b) => b.writeBigUInt64BE(1000n, 48))), 'vhd-absurd-size');
  assert.equal(code(bad((b) => b.writeBigUInt64BE(2n ** 60n, 48))), 'vhd-absurd-size');
  assert.throws(() => parseFooter(encodeFooter({ ...sample, diskType: 'fixed' }).fill(1, 64, 65)), /checksum 0x[0-9a-f]{8}, but its bytes sum to 0x[0-9a-f]{8}/);
});

test('CHS geometry: the spec\'s algorithm, capped at 65535x16x255', () => {
  assert.deepEqual(chsGeometry(2040 * 1024 ** 3), { cylinders: 65535, heads: 16, sectorsPerTrack: 255 });
  assert.deepEqual(chsGeometry(127 * 1024 ** 3), { cylinders: 65278, heads: 16, sectorsPerTrack: 255 });
  assert.deepEqual(chsGeometry(1024 ** 3), { cylinders: 2080, heads: 16, sectorsPerTrack: 63 });
  assert.ok(geometrySize(chsGeometry(10 * 1024 * 1024)) <= 10 * 1024 * 1024);
});

test('CHS geometry matches what qemu-img computes for the sizes it creates', async () => {
  await withScratch(async (s) => {
    const sizes = ['1M', '5M', '10M', '100M', '513M', '2G', '40G', '130G'];
    for (const size of sizes) {
      const path = s.path(`g-${size}.vhd`);
      await run('qemu-img', ['create', '-q', '-f', 'vpc', '-o', 'subformat=dynamic', path, size]);
      const footer = parseFooter((await readFile(path)).subarray(0, FOOTER_SIZE));
      // Without force_size QEMU rounds the size to its CHS geometry: ours must give the same.
      assert.deepEqual(chsGeometry(footer.currentSize), footer.geometry, `size ${size}`);
    }
  });
});

test('dynamic header: round trip; UTF-16BE parent name; bad cookie and checksum', () => {
  const h = {
    tableOffset: 1536,
    maxTableEntries: 5,
    blockSize: 2 * 1024 * 1024,
    parentUniqueId: 'ff'.repeat(16),
    parentTimestamp: 7,
    parentName: 'bäse.vhd',
    locators: [{ platformCode: 0x57327275, platformDataSpace: 512, platformDataLength: 20, platformDataOffset: 2048 }],
  };
  const buf = encodeDynamicHeader(h);
  const parsed = parseDynamicHeader(buf, 1 << 20);
  assert.equal(parsed.parentName, 'bäse.vhd');
  assert.equal(parsed.tableOffset, 1536);
  assert.deepEqual(parsed.locators[0], h.locators[0]);
  assert.equal(decodeUtf16Be(encodeUtf16Be('abc', 8)), 'abc');
  const b2 = Buffer.from(buf);
  b2[0] = 0x41;
  assert.equal(code(() => parseDynamicHeader(b2, 1 << 20)), 'vhd-bad-cookie');
  const b3 = Buffer.from(buf);
  b3[600] = (b3[600] ?? 0) ^ 1;
  assert.equal(code(() => parseDynamicHeader(b3, 1 << 20)), 'vhd-bad-checksum');
  assert.equal(code(() => parseDynamicHeader(encodeDynamicHeader({ ...h, blockSize: 3000 }), 1 << 20)), 'vhd-bad-block-size');
  assert.equal(code(() => parseDynamicHeader(encodeDynamicHeader({ ...h, maxTableEntries: 1 << 30 }), 1 << 20)), 'vhd-bat-out-of-range');
});

test('sector bitmap: most significant bit first; runs', () => {
  assert.equal(bitmapSize(2 * 1024 * 1024), 512);
  assert.equal(bitmapSize(512 * 1024), 512);
  assert.equal(bitmapSize(4 * 1024 * 1024 * 8), 8192);
  const bm = Buffer.alloc(4);
  setBits(bm, 0, 3);
  assert.equal(bm[0], 0xe0);
  setBits(bm, 8, 24);
  assert.deepEqual([...bm], [0xe0, 0xff, 0xff, 0]);
  assert.ok(testBit(bm, 2) && !testBit(bm, 3));
  assert.equal(runLength(bm, 0, 32), 3);
  assert.equal(runLength(bm, 3, 32), 5);
  assert.equal(runLength(bm, 8, 32), 16);
  assert.equal(runLength(bm, 24, 32), 8);
});
