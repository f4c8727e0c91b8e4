import { invalid } from '../../core/index.js';

/**
 * Where a disk's bytes live, as QEMU's block layer opens it: a local file, a host block device
 * (pass-through), or a network location QEMU reaches itself with the drivers of
 * qemu-block-extra (nfs, iscsi, nbd, ssh). A mounted share (sshfs, SMB, NFS mount) is a local
 * file. Pure: the same string always gives the same location.
 */
export type DiskLocation =
  | { kind: 'file'; path: string }
  | { kind: 'host-device'; path: string }
  | { kind: 'nfs'; host: string; path: string; user?: number; group?: number }
  | { kind: 'iscsi'; host: string; port: number; target: string; lun: number; initiatorName?: string }
  | { kind: 'nbd'; server: { type: 'inet'; host: string; port: number } | { type: 'unix'; path: string }; export?: string }
  | { kind: 'ssh'; host: string; port: number; user?: string; path: string; hostKeyCheck?: SshHostKeyCheck };

/**
 * How QEMU's ssh driver checks the server's host key (QAPI SshHostKeyCheck). Without one QEMU
 * checks known_hosts of the user QEMU runs as — libssh reads the home folder from the password
 * database, not $HOME. `hash` is the fingerprint in lowercase hex without colons, the form
 * QEMU compares (10.0.2 takes no base64).
 */
export type SshHostKeyCheck =
  | { mode: 'none' }
  | { mode: 'known_hosts' }
  | { mode: 'hash'; type: SshHostKeyHashType; hash: string };
export type SshHostKeyHashType = 'md5' | 'sha1' | 'sha256';

export type RemoteDiskLocation = Exclude<DiskLocation, { kind: 'file' } | { kind: 'host-device' }>;

/** Schemes QEMU opens itself, in the spelling a DiskAttachment's path uses. */
export const REMOTE_DISK_SCHEMES = ['nfs', 'iscsi', 'nbd', 'nbd+unix', 'ssh'] as const;

export const ISCSI_DEFAULT_PORT = 3260;
export const NBD_DEFAULT_PORT = 10809;
export const SSH_DEFAULT_PORT = 22;

const EXAMPLES =
  'Use a local path (/srv/disks/a.qcow2), nfs://host/export/file, iscsi://host[:port]/iqn.target/lun, ' +
  'nbd://host[:port]/export, nbd+unix:///export?socket=/path or ssh://user@host[:port]/path[?host_key_check=SHA256:…].';

/** Bytes of each fingerprint QEMU's ssh driver can compare. */
const HASH_BYTES: Record<SshHostKeyHashType, number> = { md5: 16, sha1: 20, sha256: 32 };

const SSH_EXAMPLES =
  'Give the server\'s host key fingerprint as ssh-keygen -l prints it (?host_key_check=SHA256:…, or sha256:/sha1:/md5: ' +
  'and hex digits), host_key_check=yes for known_hosts of the user QEMU runs as (the default), or host_key_check=no to skip the check.';

/**
 * A path under /dev/ (but not the tmpfs /dev/shm/) is a host device: QEMU's `file` driver
 * refuses block devices ("'file' driver requires ... to be a regular file", 10.0.2), and
 * `host_device` refuses regular files. storage/passthrough.ts checks the device itself.
 */
export function isHostDevicePath(path: string): boolean {
  return path.startsWith('/dev/') && !path.startsWith('/dev/shm/');
}

export function isRemoteLocation(path: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(path);
}

/**
 * Parses a disk's path or URL. Throws an `invalid` VisorError on `field` naming what is wrong
 * and quoting the value. `blockDevices`: paths the caller knows to be block devices (stat),
 * which overrides the /dev/ rule for local paths.
 */
export function parseDiskLocation(location: string, options: { field?: string; blockDevices?: ReadonlySet<string> } = {}): DiskLocation {
  const field = options.field ?? 'path';
  if (location.startsWith('/')) {
    const device = options.blockDevices ? options.blockDevices.has(location) : isHostDevicePath(location);
    return device ? { kind: 'host-device', path: location } : { kind: 'file', path: location };
  }
  if (!isRemoteLocation(location)) {
    throw invalid(field, `The disk location "${location}" is neither an absolute path nor a URL.`, EXAMPLES);
  }
  let url: URL;
  try {
    url = new URL(location);
  } catch {
    throw invalid(field, `The disk location "${location}" is not a valid URL.`, EXAMPLES);
  }
  const scheme = url.protocol.slice(0, -1).toLowerCase();
  const path = decodeURIComponent(url.pathname);
  const fail = (why: string): never => {
    throw invalid(field, `The disk location "${location}" ${why}.`, EXAMPLES);
  };
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = (fallback: number): number => {
    if (url.port === '') return fallback;
    const n = Number(url.port);
    if (!Number.isInteger(n) || n < 1 || n > 65535) fail(`has port ${url.port}, which is not 1-65535`);
    return n;
  };
  switch (scheme) {
    case 'nfs': {
      if (!host) fail('names no NFS server');
      if (path.length < 2 || path.endsWith('/')) fail('names no file on the export (nfs://server/export/file)');
      if (url.port !== '') fail('has a port: QEMU finds the NFS port through the server\'s portmapper');
      const out: DiskLocation = { kind: 'nfs', host, path };
      const uid = url.searchParams.get('uid');
      const gid = url.searchParams.get('gid');
      if (uid !== null) out.user = idNumber(uid, 'uid', fail);
      if (gid !== null) out.group = idNumber(gid, 'gid', fail);
      return out;
    }
    case 'iscsi': {
      if (!host) fail('names no iSCSI portal');
      const parts = path.split('/').filter((p) => p !== '');
      if (parts.length !== 2) fail('must name a target and a LUN (iscsi://host/iqn.2025-01.org.example:disk/0)');
      const [target = '', lunText = ''] = parts;
      if (!/^(iqn\.|eui\.|naa\.)/.test(target)) fail(`names target "${target}", which is not an iqn./eui./naa. name`);
      const lun = Number(lunText);
      if (!/^\d+$/.test(lunText) || lun > 16383) fail(`has LUN "${lunText}", which is not 0-16383`);
      const out: DiskLocation = { kind: 'iscsi', host, port: port(ISCSI_DEFAULT_PORT), target, lun };
      const initiator = url.searchParams.get('initiator-name');
      if (initiator !== null) out.initiatorName = initiator;
      return out;
    }
    case 'nbd': {
      if (!host) fail('names no NBD server');
      const name = path.replace(/^\//, '');
      return { kind: 'nbd', server: { type: 'inet', host, port: port(NBD_DEFAULT_PORT) }, ...(name ? { export: name } : {}) };
    }
    case 'nbd+unix': {
      const socket = url.searchParams.get('socket');
      if (host) fail('has a host: nbd+unix has none (nbd+unix:///export?socket=/path)');
      if (!socket || !socket.startsWith('/')) fail('names no absolute socket path (?socket=/path)');
      const name = path.replace(/^\//, '');
      return { kind: 'nbd', server: { type: 'unix', path: socket as string }, ...(name ? { export: name } : {}) };
    }
    case 'ssh': {
      if (!host) fail('names no SSH server');
      if (path.length < 2) fail('names no file (ssh://user@host/path)');
      const out: DiskLocation = { kind: 'ssh', host, port: port(SSH_DEFAULT_PORT), path };
      if (url.password) fail('carries a password: QEMU\'s ssh driver authenticates with ssh-agent or keys only');
      if (url.username) out.user = decodeURIComponent(url.username);
      const query = rawQuery(url.search, fail);
      for (const name of query.keys()) {
        if (name !== 'host_key_check') fail(`has the parameter "${name}", which ssh:// does not take (only host_key_check)`);
      }
      const check = query.get('host_key_check');
      if (check !== undefined) {
        out.hostKeyCheck = parseHostKeyCheck(check, (why) => {
          throw invalid(field, `The disk location "${location}" has host_key_check=${check}, ${why}.`, SSH_EXAMPLES);
        });
      }
      return out;
    }
    default:
      return fail(`uses "${scheme}://", which Visor does not open (${REMOTE_DISK_SCHEMES.join(', ')})`);
  }
}

/**
 * A URL's query as written: URLSearchParams would turn the "+" of a base64 fingerprint into a
 * space. A name given twice is refused (which one would win is a guess).
 */
function rawQuery(search: string, fail: (why: string) => never): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of search.replace(/^\?/, '').split('&')) {
    if (part === '') continue;
    const equals = part.indexOf('=');
    let name: string;
    let value: string;
    try {
      name = decodeURIComponent(equals < 0 ? part : part.slice(0, equals));
      value = equals < 0 ? '' : decodeURIComponent(part.slice(equals + 1));
    } catch {
      return fail(`has the parameter "${part}", which is not valid percent-encoding`);
    }
    if (out.has(name)) fail(`gives the parameter "${name}" twice`);
    out.set(name, value);
  }
  return out;
}

/**
 * QEMU's legacy ssh URL values for host_key_check (yes, no, md5:HEX, sha1:HEX, sha256:HEX,
 * hex with or without colons), plus the form OpenSSH prints (`ssh-keygen -l`, `ssh -v`):
 * SHA256:base64 or SHA1:base64 without padding, and MD5:hex. The answer carries hex, which is
 * all QEMU 10.0.2 compares. Pure.
 */
export function parseHostKeyCheck(text: string, fail: (why: string) => never): SshHostKeyCheck {
  const lower = text.toLowerCase();
  if (lower === 'yes' || lower === 'known_hosts') return { mode: 'known_hosts' };
  if (lower === 'no' || lower === 'none') return { mode: 'none' };
  const colon = text.indexOf(':');
  const typeText = colon < 0 ? '' : text.slice(0, colon).toLowerCase();
  if (!(typeText in HASH_BYTES)) {
    return fail('which is not yes, no, or a fingerprint starting with SHA256:, sha1: or md5:');
  }
  const type = typeText as SshHostKeyHashType;
  const bytes = HASH_BYTES[type];
  const digits = text.slice(colon + 1);
  const hex = digits.replace(/:/g, '');
  if (/^[0-9a-f]+$/i.test(hex) && hex.length === bytes * 2) return { mode: 'hash', type, hash: hex.toLowerCase() };
  if (type !== 'md5' && /^[A-Za-z0-9+/]+=*$/.test(digits)) {
    const decoded = Buffer.from(digits, 'base64');
    if (decoded.length === bytes && decoded.toString('base64').replace(/=+$/, '') === digits.replace(/=+$/, '')) {
      return { mode: 'hash', type, hash: decoded.toString('hex') };
    }
  }
  const base64 = type === 'md5' ? '' : ` or ${Math.ceil((bytes * 4) / 3)} base64 characters`;
  return fail(`which is not a ${type.toUpperCase()} fingerprint (${bytes * 2} hex digits${base64})`);
}

function idNumber(text: string, what: string, fail: (why: string) => never): number {
  if (!/^\d+$/.test(text)) fail(`has ${what}=${text}, which is not a number`);
  return Number(text);
}

/**
 * The protocol node's BlockdevOptions (without node-name) for a location: `file`,
 * `host_device`, `nfs`, `iscsi`, `nbd` or `ssh`. Nested as QMP's blockdev-add wants it;
 * `flattenOptions` turns it into the dotted -blockdev form.
 */
export function protocolOptions(location: DiskLocation): Record<string, unknown> {
  switch (location.kind) {
    case 'file':
      return { driver: 'file', filename: location.path };
    case 'host-device':
      return { driver: 'host_device', filename: location.path };
    case 'nfs':
      return { driver: 'nfs', server: { type: 'inet', host: location.host }, path: location.path, user: location.user, group: location.group };
    case 'iscsi':
      return {
        driver: 'iscsi',
        transport: 'tcp',
        portal: `${location.host.includes(':') ? `[${location.host}]` : location.host}:${location.port}`,
        target: location.target,
        lun: location.lun,
        'initiator-name': location.initiatorName,
      };
    case 'nbd':
      return {
        driver: 'nbd',
        server: location.server.type === 'unix' ? { type: 'unix', path: location.server.path } : { type: 'inet', host: location.server.host, port: String(location.server.port) },
        export: location.export,
      };
    case 'ssh':
      return {
        driver: 'ssh',
        server: { host: location.host, port: String(location.port) },
        path: location.path,
        user: location.user,
        'host-key-check': location.hostKeyCheck,
      };
  }
}

/** {a: {b: 1}, c: undefined} → [['a.b', 1]]: the -blockdev key=value form of nested options. */
export function flattenOptions(options: Record<string, unknown>, prefix = ''): Array<[string, string | number | boolean]> {
  const out: Array<[string, string | number | boolean]> = [];
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined || value === null) continue;
    const name = prefix ? `${prefix}.${key}` : key;
    if (typeof value === 'object') out.push(...flattenOptions(value as Record<string, unknown>, name));
    else out.push([name, value as string | number | boolean]);
  }
  return out;
}

/** Drops undefined members, recursively: QMP rejects `null` where a member is optional. */
export function compact(options: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined || value === null) continue;
    out[key] = typeof value === 'object' && !Array.isArray(value) ? compact(value as Record<string, unknown>) : value;
  }
  return out;
}
