import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PROBE_EXIT_STATUS, kvmProbeFirmware } from './kvm-probe.js';

describe('kvmProbeFirmware', () => {
  it('is a 64 KiB BIOS image with a jump at the reset vector and the debug-exit write', () => {
    const image = kvmProbeFirmware();
    assert.equal(image.length, 65536);
    assert.equal(image[0xfff0], 0xe9, 'jmp rel16 at the reset vector');
    assert.equal((0xfff3 + image.readUInt16LE(0xfff1)) & 0xffff, 0, 'to the start of the image');
    assert.ok(image.includes(Buffer.from([0xb0, 0x2a, 0xe6, 0xf4])), 'mov $0x2a,%al; out %al,$0xf4');
    assert.equal(PROBE_EXIT_STATUS, 85);
  });
});
