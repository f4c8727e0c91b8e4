/**
 * GUIDs as VHDX stores them: Microsoft's mixed-endian binary form (Data1 u32 LE, Data2 u16 LE,
 * Data3 u16 LE, Data4 8 bytes as is). In memory a GUID is its lowercase canonical string.
 */
import { randomUUID } from 'node:crypto';

export type Guid = string;
export const ZERO_GUID: Guid = '00000000-0000-0000-0000-000000000000';
const GUID_PATTERN = /^\{?([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})\}?$/i;

const hex = (buf: Uint8Array, from: number, to: number): string =>
  Buffer.from(buf.subarray(from, to)).toString('hex');

export function readGuid(buf: Buffer, offset: number): Guid {
  const d1 = buf.readUInt32LE(offset).toString(16).padStart(8, '0');
  const d2 = buf.readUInt16LE(offset + 4).toString(16).padStart(4, '0');
  const d3 = buf.readUInt16LE(offset + 6).toString(16).padStart(4, '0');
  return `${d1}-${d2}-${d3}-${hex(buf, offset + 8, offset + 10)}-${hex(buf, offset + 10, offset + 16)}`;
}

export function writeGuid(buf: Buffer, offset: number, guid: Guid): void {
  const m = GUID_PATTERN.exec(guid);
  if (!m) throw new TypeError(`Not a GUID: "${guid}"`);
  buf.writeUInt32LE(parseInt(m[1]!, 16), offset);
  buf.writeUInt16LE(parseInt(m[2]!, 16), offset + 4);
  buf.writeUInt16LE(parseInt(m[3]!, 16), offset + 6);
  Buffer.from(m[4]! + m[5]!, 'hex').copy(buf, offset + 8);
}

/** Parses "{83ed0ec3-...}" or "83ED0EC3-..." into the canonical form; undefined if not a GUID. */
export function parseGuidText(text: string): Guid | undefined {
  const m = GUID_PATTERN.exec(text.trim());
  return m ? `${m[1]}-${m[2]}-${m[3]}-${m[4]}-${m[5]}`.toLowerCase() : undefined;
}

export function newGuid(): Guid {
  return randomUUID();
}
