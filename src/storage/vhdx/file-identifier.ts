/**
 * The file type identifier at offset 0 (MS-VHDX 2.2.1): the signature "vhdxfile" and the name of
 * the program that created the file, UTF-16LE in 512 bytes. Never rewritten after creation.
 */
import { vhdxError } from './errors.js';
import { FILE_IDENTIFIER_OFFSET, KiB } from './layout.js';

/** "vhdxfile" read as a little-endian u64. */
export const FILE_IDENTIFIER_SIGNATURE = 0x656c6966_78646876n;
export const FILE_IDENTIFIER_SIGNATURE_ASCII = 'vhdxfile';
export const FILE_IDENTIFIER_SIZE = 64 * KiB;
const CREATOR_OFFSET = 8;
const CREATOR_SIZE = 512;
export { FILE_IDENTIFIER_OFFSET };

export interface FileIdentifier {
  /** Who created the file ("Microsoft Windows 10.0.19045.0", "QEMU v10.0.2", "Visor"). */
  readonly creator: string;
}

export function parseFileIdentifier(buf: Buffer): FileIdentifier {
  if (buf.length < CREATOR_OFFSET + CREATOR_SIZE) {
    throw vhdxError('vhdx-truncated', `The file is ${buf.length} bytes long, too short to be a VHDX.`);
  }
  const signature = buf.readBigUInt64LE(0);
  if (signature !== FILE_IDENTIFIER_SIGNATURE) {
    const ascii = buf.subarray(0, 8).toString('latin1').replace(/[^\x20-\x7e]/g, '.');
    throw vhdxError(
      'vhdx-bad-signature',
      `Not a VHDX file: the file identifier at offset 0 reads "${ascii}", not "${FILE_IDENTIFIER_SIGNATURE_ASCII}".`,
      { structure: 'file-identifier', found: ascii },
    );
  }
  const raw = buf.subarray(CREATOR_OFFSET, CREATOR_OFFSET + CREATOR_SIZE).toString('utf16le');
  const nul = raw.indexOf('\0');
  return { creator: nul < 0 ? raw : raw.slice(0, nul) };
}

export function encodeFileIdentifier(id: FileIdentifier): Buffer {
  const buf = Buffer.alloc(FILE_IDENTIFIER_SIZE);
  buf.writeBigUInt64LE(FILE_IDENTIFIER_SIGNATURE, 0);
  buf.write(id.creator.slice(0, CREATOR_SIZE / 2 - 1), CREATOR_OFFSET, CREATOR_SIZE - 2, 'utf16le');
  return buf;
}
