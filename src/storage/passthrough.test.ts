import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PASSTHROUGH_ERROR_CODES, parseMountInfo, parseSwaps, passthroughRefusal } from './passthrough.js';
import type { BlockDeviceFacts } from './passthrough.js';

const MOUNTINFO = [
  '22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw',
  '40 22 8:17 / /mnt/my\\040data rw,relatime shared:20 - ext4 /dev/sdb1 rw',
  '41 22 253:0 / /srv rw - xfs /dev/mapper/vg-srv rw',
  '42 22 0:5 / /dev rw - devtmpfs devtmpfs rw',
].join('\n');

function facts(over: Partial<BlockDeviceFacts> = {}): BlockDeviceFacts {
  return { path: '/dev/sdc', realPath: '/dev/sdc', name: 'sdc', device: '8:32', sizeBytes: 1 << 30, readOnly: false, partitions: [], holders: [], ...over };
}

const host = { mounts: parseMountInfo(MOUNTINFO), swaps: parseSwaps('Filename\tType\tSize\tUsed\tPriority\n/dev/sdd2 partition 1024 0 -2\n'), inUse: new Set<string>() };
const code = (error: unknown): string | undefined => (error as { code?: string } | null)?.code;

describe('passthrough', () => {
  it('parses mountinfo, unescaping mount points', () => {
    assert.deepEqual(host.mounts[1], { device: '8:17', mountPoint: '/mnt/my data', source: '/dev/sdb1' });
    assert.deepEqual(host.swaps, ['/dev/sdd2']);
  });

  it('a free device passes', () => {
    assert.equal(passthroughRefusal(facts(), host), null);
  });

  it('refuses a device whose partition is mounted, naming the mount point', () => {
    const refusal = passthroughRefusal(facts({ path: '/dev/disk/by-id/usb-x', realPath: '/dev/sdb', name: 'sdb', device: '8:16', partitions: [{ name: 'sdb1', device: '8:17' }] }), host, 'disks[1].path');
    assert.equal(code(refusal), PASSTHROUGH_ERROR_CODES.mounted);
    assert.equal(refusal?.field, 'disks[1].path');
    assert.match(refusal?.message ?? '', /"\/dev\/disk\/by-id\/usb-x" \(\/dev\/sdb\) has sdb1, which is mounted at "\/mnt\/my data"/);
  });

  it('refuses a device mounted itself', () => {
    assert.equal(code(passthroughRefusal(facts({ name: 'vda', device: '254:0' }), host)), PASSTHROUGH_ERROR_CODES.mounted);
  });

  it('refuses a device under a mounted device-mapper volume, and one merely held', () => {
    const dm = facts({ holders: [{ name: 'dm-0', device: '253:0', of: 'sdc' }] });
    assert.equal(code(passthroughRefusal(dm, host)), PASSTHROUGH_ERROR_CODES.mounted);
    const held = facts({ holders: [{ name: 'dm-3', device: '253:3', of: 'sdc1' }] });
    assert.equal(code(passthroughRefusal(held, host)), PASSTHROUGH_ERROR_CODES.held);
  });

  it('refuses swap', () => {
    assert.equal(code(passthroughRefusal(facts({ name: 'sdd', device: '8:48', partitions: [{ name: 'sdd2', device: '8:50' }] }), host)), PASSTHROUGH_ERROR_CODES.swap);
  });

  it('refuses a device another VM has', () => {
    assert.equal(code(passthroughRefusal(facts(), { ...host, inUse: new Set(['/dev/sdc']) })), PASSTHROUGH_ERROR_CODES.inUse);
  });
});
