import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VisorError } from '../../core/index.js';
import { diskNodes } from './block-nodes.js';
import { flattenOptions, parseDiskLocation, protocolOptions } from './disk-location.js';

const invalidOn = (field: string, text: RegExp) => (error: unknown) => error instanceof VisorError && error.field === field && text.test(error.message);

describe('parseDiskLocation', () => {
  it('local files, and host devices under /dev/ (not /dev/shm)', () => {
    assert.deepEqual(parseDiskLocation('/srv/a.qcow2'), { kind: 'file', path: '/srv/a.qcow2' });
    assert.deepEqual(parseDiskLocation('/dev/loop3'), { kind: 'host-device', path: '/dev/loop3' });
    assert.deepEqual(parseDiskLocation('/dev/shm/x.raw'), { kind: 'file', path: '/dev/shm/x.raw' });
    assert.deepEqual(parseDiskLocation('/dev/loop3', { blockDevices: new Set() }), { kind: 'file', path: '/dev/loop3' });
  });

  it('nfs://server/export/file, with uid/gid', () => {
    assert.deepEqual(parseDiskLocation('nfs://127.0.0.1/exports/vm/a%20b.qcow2?uid=0&gid=0'), { kind: 'nfs', host: '127.0.0.1', path: '/exports/vm/a b.qcow2', user: 0, group: 0 });
    assert.throws(() => parseDiskLocation('nfs://h:2049/e/f'), invalidOn('path', /portmapper/));
    assert.throws(() => parseDiskLocation('nfs://h/'), invalidOn('path', /names no file/));
  });

  it('iscsi://portal/target/lun', () => {
    assert.deepEqual(parseDiskLocation('iscsi://10.0.0.5/iqn.2025-01.org.visor:disk1/1'), { kind: 'iscsi', host: '10.0.0.5', port: 3260, target: 'iqn.2025-01.org.visor:disk1', lun: 1 });
    assert.deepEqual(parseDiskLocation('iscsi://[::1]:3261/iqn.x:y/0').kind, 'iscsi');
    assert.throws(() => parseDiskLocation('iscsi://h/disk1/0'), invalidOn('path', /not an iqn/));
    assert.throws(() => parseDiskLocation('iscsi://h/iqn.x:y'), invalidOn('path', /target and a LUN/));
  });

  it('nbd:// and nbd+unix://', () => {
    assert.deepEqual(parseDiskLocation('nbd://h:10810/exp'), { kind: 'nbd', server: { type: 'inet', host: 'h', port: 10810 }, export: 'exp' });
    assert.deepEqual(parseDiskLocation('nbd://h'), { kind: 'nbd', server: { type: 'inet', host: 'h', port: 10809 } });
    assert.deepEqual(parseDiskLocation('nbd+unix:///d1?socket=/run/n.sock'), { kind: 'nbd', server: { type: 'unix', path: '/run/n.sock' }, export: 'd1' });
    assert.throws(() => parseDiskLocation('nbd+unix:///d1'), invalidOn('path', /socket/));
  });

  it('ssh://user@host/path, never with a password', () => {
    assert.deepEqual(parseDiskLocation('ssh://root@127.0.0.1:2222/srv/a.qcow2'), { kind: 'ssh', host: '127.0.0.1', port: 2222, user: 'root', path: '/srv/a.qcow2' });
    assert.throws(() => parseDiskLocation('ssh://u:pw@h/a'), invalidOn('path', /password/));
  });

  it('refuses other schemes and relative paths, quoting the value', () => {
    assert.throws(() => parseDiskLocation('http://h/a.qcow2', { field: 'disks[2].path' }), invalidOn('disks[2].path', /"http:\/\/h\/a.qcow2" uses "http:\/\/"/));
    assert.throws(() => parseDiskLocation('disk.qcow2'), invalidOn('path', /neither an absolute path nor a URL/));
  });
});

describe('protocol nodes', () => {
  it('flatten to -blockdev keys', () => {
    assert.deepEqual(flattenOptions(protocolOptions(parseDiskLocation('nfs://127.0.0.1/e/a.qcow2'))), [
      ['driver', 'nfs'],
      ['server.type', 'inet'],
      ['server.host', '127.0.0.1'],
      ['path', '/e/a.qcow2'],
    ]);
  });

  it('a disk on a host device gets host_device under its format node', () => {
    const nodes = diskNodes({ path: '/dev/loop0', format: 'raw', readOnly: true }, 'disk-p');
    assert.deepEqual(nodes.protocol, { driver: 'host_device', 'node-name': 'disk-p-file', filename: '/dev/loop0', 'read-only': true });
    assert.deepEqual(nodes.format, { driver: 'raw', 'node-name': 'disk-p', file: 'disk-p-file', 'read-only': true });
  });

  it('an iSCSI disk: portal host:port, target, lun', () => {
    const nodes = diskNodes({ path: 'iscsi://127.0.0.1/iqn.2025-01.org.visor:t/1', format: 'raw', readOnly: false }, 'disk-i');
    assert.deepEqual(nodes.protocol, { driver: 'iscsi', 'node-name': 'disk-i-file', transport: 'tcp', portal: '127.0.0.1:3260', target: 'iqn.2025-01.org.visor:t', lun: 1 });
  });
});
