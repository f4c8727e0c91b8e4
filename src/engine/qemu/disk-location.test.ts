import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VisorError } from '../../core/index.js';
import { diskNodes } from './block-nodes.js';
import { flattenOptions, parseDiskLocation, protocolOptions } from './disk-location.js';
import type { DiskLocation } from './disk-location.js';

const hostKey = (location: DiskLocation): unknown => (location.kind === 'ssh' ? location.hostKeyCheck : 'not ssh');

// ssh-keygen -lf of one ed25519 host key, both ways: SHA256:<base64> and hex.
const SHA256_B64 = 'g1TzzsnPurigH48CRZNFuL2bqoz99Xmr9UDgX6DIWEc';
const SHA256_HEX = '8354f3cec9cfbab8a01f8f02459345b8bd9baa8cfdf579abf540e05fa0c85847';
const MD5_COLONS = '4f:be:6d:22:78:60:f5:9a:59:a5:34:df:16:98:41:40';

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

  it('ssh:// host_key_check: the OpenSSH fingerprint, QEMU\'s hex forms, yes and no', () => {
    const at = (query: string) => parseDiskLocation(`ssh://root@127.0.0.1:2222/srv/a.qcow2?${query}`);
    const sha256 = { mode: 'hash', type: 'sha256', hash: SHA256_HEX };
    assert.deepEqual(at(`host_key_check=SHA256:${SHA256_B64}`), { kind: 'ssh', host: '127.0.0.1', port: 2222, user: 'root', path: '/srv/a.qcow2', hostKeyCheck: sha256 });
    assert.deepEqual(at(`host_key_check=sha256:${SHA256_HEX}`), at(`host_key_check=SHA256:${SHA256_B64}`), 'QEMU\'s hex form gives the same');
    assert.deepEqual(hostKey(at(`host_key_check=sha256:${SHA256_HEX.toUpperCase().replace(/(..)(?!$)/g, '$1:')}`)), sha256);
    assert.deepEqual(hostKey(at(`host_key_check=SHA256%3A${SHA256_B64}%3D`)), sha256, 'percent-encoded, with base64 padding');
    assert.deepEqual(hostKey(at(`host_key_check=md5:${MD5_COLONS}`)), { mode: 'hash', type: 'md5', hash: MD5_COLONS.replace(/:/g, '') });
    assert.deepEqual(hostKey(at('host_key_check=sha1:0123456789abcdef0123456789abcdef01234567')), { mode: 'hash', type: 'sha1', hash: '0123456789abcdef0123456789abcdef01234567' });
    assert.deepEqual(hostKey(at('host_key_check=yes')), { mode: 'known_hosts' });
    assert.deepEqual(hostKey(at('host_key_check=no')), { mode: 'none' });
    assert.equal(hostKey(parseDiskLocation('ssh://h/a')), undefined, 'none given: QEMU\'s default (known_hosts)');
  });

  it('a "+" in a base64 fingerprint stays a "+" (URLSearchParams would make it a space)', () => {
    const b64 = Buffer.from('fb'.repeat(32), 'hex').toString('base64').replace(/=+$/, '');
    assert.ok(b64.includes('+'));
    assert.deepEqual(hostKey(parseDiskLocation(`ssh://h/a?host_key_check=SHA256:${b64}`)), { mode: 'hash', type: 'sha256', hash: 'fb'.repeat(32) });
  });

  it('a wrong host_key_check or another parameter is refused, naming the field and the parameter', () => {
    const field = 'disks[0].path';
    const bad = (query: string, text: RegExp) => assert.throws(() => parseDiskLocation(`ssh://h/a?${query}`, { field }), invalidOn(field, text));
    bad(`host_key_check=SHA256:${SHA256_B64.slice(1)}`, /host_key_check=SHA256:\S+, which is not a SHA256 fingerprint \(64 hex digits or 43 base64 characters\)/);
    bad(`host_key_check=sha256:${SHA256_HEX.slice(2)}`, /not a SHA256 fingerprint/);
    bad(`host_key_check=md5:${SHA256_B64.slice(0, 22)}`, /not a MD5 fingerprint \(32 hex digits\)/);
    bad(`host_key_check=${SHA256_HEX}`, /not yes, no, or a fingerprint/);
    bad('host_key_check=sha512:00', /not yes, no, or a fingerprint/);
    bad('host_key_check=', /not yes, no/);
    bad('host_key_check=no&host_key_check=yes', /"host_key_check" twice/);
    bad('host-key-check=no', /parameter "host-key-check", which ssh:\/\/ does not take \(only host_key_check\)/);
    bad('host_key_check=%zz', /not valid percent-encoding/);
    assert.throws(
      () => parseDiskLocation('ssh://h/a?host_key_check=sha1:00', { field }),
      (error: unknown) => error instanceof VisorError && /ssh-keygen -l/.test(error.hint ?? ''),
      'the hint says where a fingerprint comes from',
    );
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

  it('an ssh:// disk: server, path, user and host-key-check as QEMU\'s ssh driver takes them', () => {
    const nodes = diskNodes({ path: `ssh://root@127.0.0.1:2222/srv/a.qcow2?host_key_check=SHA256:${SHA256_B64}`, format: 'qcow2', readOnly: false }, 'disk-s');
    assert.deepEqual(nodes.protocol, {
      driver: 'ssh',
      'node-name': 'disk-s-file',
      server: { host: '127.0.0.1', port: '2222' },
      path: '/srv/a.qcow2',
      user: 'root',
      'host-key-check': { mode: 'hash', type: 'sha256', hash: SHA256_HEX },
    });
    assert.deepEqual(flattenOptions(protocolOptions(parseDiskLocation('ssh://h/a?host_key_check=no'))), [
      ['driver', 'ssh'],
      ['server.host', 'h'],
      ['server.port', '22'],
      ['path', '/a'],
      ['host-key-check.mode', 'none'],
    ]);
  });

  it('an iSCSI disk: portal host:port, target, lun', () => {
    const nodes = diskNodes({ path: 'iscsi://127.0.0.1/iqn.2025-01.org.visor:t/1', format: 'raw', readOnly: false }, 'disk-i');
    assert.deepEqual(nodes.protocol, { driver: 'iscsi', 'node-name': 'disk-i-file', transport: 'tcp', portal: '127.0.0.1:3260', target: 'iqn.2025-01.org.visor:t', lun: 1 });
  });
});
