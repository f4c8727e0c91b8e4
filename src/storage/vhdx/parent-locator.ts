/**
 * The parent locator metadata item (MS-VHDX 2.6.2.6): a 20-byte header (LocatorType GUID,
 * KeyValueCount) and 12-byte entries pointing at UTF-16LE keys and values inside the item. The
 * VHDX locator type carries parent_linkage (the parent's DataWriteGuid) and paths to the parent.
 */
import { vhdxError, quote } from './errors.js';
import { parseGuidText, readGuid, writeGuid, type Guid } from './guid.js';

export const VHDX_PARENT_LOCATOR_TYPE: Guid = 'b04aefb7-d19e-4a81-b789-25b8e9445913';
const HEADER_LENGTH = 20;
const ENTRY_LENGTH = 12;

export interface ParentLocator {
  readonly locatorType: Guid;
  /** Every key-value pair, as stored. */
  readonly entries: Readonly<Record<string, string>>;
  /** parent_linkage (and parent_linkage2): the DataWriteGuid(s) the parent must have. */
  readonly parentLinkage: Guid;
  readonly parentLinkage2?: Guid;
  readonly relativePath?: string;
  readonly volumePath?: string;
  readonly absoluteWin32Path?: string;
}

const PATH_KEYS = ['relative_path', 'volume_path', 'absolute_win32_path'] as const;

export function parseParentLocator(item: Buffer): ParentLocator {
  const bad = (message: string, details?: Record<string, unknown>) =>
    vhdxError('vhdx-bad-parent-locator', `The parent locator ${message}`, details);
  if (item.length < HEADER_LENGTH) throw bad(`is ${item.length} bytes long, shorter than its 20-byte header.`);
  const locatorType = readGuid(item, 0);
  if (locatorType !== VHDX_PARENT_LOCATOR_TYPE) {
    throw bad(`has type ${locatorType}; only the VHDX locator type ${VHDX_PARENT_LOCATOR_TYPE} is known.`, {
      locatorType,
    });
  }
  const count = item.readUInt16LE(18);
  if (HEADER_LENGTH + count * ENTRY_LENGTH > item.length) {
    throw bad(`claims ${count} key-value pairs, which do not fit in its ${item.length} bytes.`, { count });
  }
  const entries: Record<string, string> = {};
  const text = (offset: number, length: number, what: string): string => {
    if (offset === 0 || length === 0 || length % 2 !== 0 || offset + length > item.length) {
      throw bad(`has a ${what} at offset ${quote(offset)} with length ${length}, outside its ${item.length} bytes or empty.`);
    }
    return item.subarray(offset, offset + length).toString('utf16le');
  };
  for (let i = 0; i < count; i++) {
    const at = HEADER_LENGTH + i * ENTRY_LENGTH;
    const key = text(item.readUInt32LE(at), item.readUInt16LE(at + 8), 'key');
    const value = text(item.readUInt32LE(at + 4), item.readUInt16LE(at + 10), 'value');
    if (Object.hasOwn(entries, key)) throw bad(`has the key "${key}" twice.`, { key });
    entries[key] = value;
  }
  const linkageText = entries['parent_linkage'];
  const parentLinkage = linkageText === undefined ? undefined : parseGuidText(linkageText);
  if (parentLinkage === undefined) {
    throw bad(
      linkageText === undefined ? 'has no parent_linkage entry.' : `has parent_linkage "${linkageText}", which is not a GUID.`,
    );
  }
  if (!PATH_KEYS.some((k) => entries[k] !== undefined)) {
    throw bad('has none of relative_path, volume_path, absolute_win32_path: the parent cannot be found.');
  }
  const linkage2 = entries['parent_linkage2'] === undefined ? undefined : parseGuidText(entries['parent_linkage2']);
  return {
    locatorType,
    entries,
    parentLinkage,
    ...(linkage2 ? { parentLinkage2: linkage2 } : {}),
    ...(entries['relative_path'] !== undefined ? { relativePath: entries['relative_path'] } : {}),
    ...(entries['volume_path'] !== undefined ? { volumePath: entries['volume_path'] } : {}),
    ...(entries['absolute_win32_path'] !== undefined ? { absoluteWin32Path: entries['absolute_win32_path'] } : {}),
  };
}

/** Encodes key-value pairs (parent_linkage as "{guid}", lowercase) into a locator item. */
export function encodeParentLocator(pairs: Readonly<Record<string, string>>): Buffer {
  const keys = Object.keys(pairs);
  const strings = keys.map((k) => [Buffer.from(k, 'utf16le'), Buffer.from(pairs[k]!, 'utf16le')] as const);
  const tableEnd = HEADER_LENGTH + keys.length * ENTRY_LENGTH;
  const total = tableEnd + strings.reduce((n, [k, v]) => n + k.length + v.length, 0);
  const buf = Buffer.alloc(total);
  writeGuid(buf, 0, VHDX_PARENT_LOCATOR_TYPE);
  buf.writeUInt16LE(keys.length, 18);
  let cursor = tableEnd;
  strings.forEach(([k, v], i) => {
    const at = HEADER_LENGTH + i * ENTRY_LENGTH;
    buf.writeUInt32LE(cursor, at);
    buf.writeUInt16LE(k.length, at + 8);
    k.copy(buf, cursor);
    cursor += k.length;
    buf.writeUInt32LE(cursor, at + 4);
    buf.writeUInt16LE(v.length, at + 10);
    v.copy(buf, cursor);
    cursor += v.length;
  });
  return buf;
}

export function linkageText(guid: Guid): string {
  return `{${guid.toLowerCase()}}`;
}

/** Windows drive letter Wine and we map to the Linux root: "\\?\Z:\srv\a.vhdx" is "/srv/a.vhdx". */
export const LINUX_ROOT_DRIVE = 'Z:';

/** The Win32 form we store for an absolute Linux path (2.6.2.6.3 requires "\\?\" + drive). */
export function win32PathFor(linuxPath: string): string {
  return `\\\\?\\${LINUX_ROOT_DRIVE}${linuxPath.replace(/\//g, '\\')}`;
}

/**
 * Where to look for the parent, in the spec's order: relative_path (against the child's folder),
 * volume_path and absolute_win32_path (only the "Z:" form maps to a Linux path), then — as
 * libvhdi does — the bare file name beside the child. The caller checks parent_linkage.
 */
export function parentCandidates(childDir: string, locator: ParentLocator): string[] {
  const out: string[] = [];
  const toPosix = (p: string) => p.replace(/\\/g, '/');
  if (locator.relativePath !== undefined) {
    const rel = toPosix(locator.relativePath);
    out.push(rel.startsWith('/') ? rel : `${childDir}/${rel}`);
  }
  for (const p of [locator.volumePath, locator.absoluteWin32Path]) {
    if (p === undefined) continue;
    const m = /^\\\\\?\\([A-Za-z]:)(\\.*)$/.exec(p);
    if (m && m[1]!.toUpperCase() === LINUX_ROOT_DRIVE) out.push(toPosix(m[2]!));
  }
  for (const p of [locator.relativePath, locator.absoluteWin32Path, locator.volumePath]) {
    if (p === undefined) continue;
    const base = p.split(/[\\/]/).pop();
    if (base) out.push(`${childDir}/${base}`);
  }
  return [...new Set(out)];
}
