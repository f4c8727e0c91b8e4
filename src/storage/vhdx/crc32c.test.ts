import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc32c, crc32cWithZeroedField } from './crc32c.js';

test('CRC-32C matches the published check value and RFC 3720 vectors', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  assert.equal(crc32c(Buffer.alloc(32)), 0x8a9136aa); // RFC 3720 B.4: 32 bytes of zeros
  assert.equal(crc32c(Buffer.alloc(32, 0xff)), 0x62a8ab43); // 32 bytes of 0xff
  const ascending = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
  assert.equal(crc32c(ascending), 0x46dd794e);
});

test('CRC-32C continues across chunks and treats a checksum field as zero', () => {
  const data = Buffer.from('The quick brown fox jumps over the lazy dog, twice over.');
  assert.equal(crc32c(data.subarray(13), crc32c(data.subarray(0, 13))), crc32c(data));
  const withField = Buffer.from(data);
  withField.writeUInt32LE(0xdeadbeef, 4);
  const zeroed = Buffer.from(data);
  zeroed.writeUInt32LE(0, 4);
  assert.equal(crc32cWithZeroedField(withField, 4), crc32c(zeroed));
});
