/**
 * The ways a VHD file can be wrong, each a VisorError code. Parsers throw these with the value
 * they found; `VhdFile` adds the path. A corrupt file is the caller's input (`invalid`); a failed
 * read or write is the outside world (`failed`); a write on a read-only open is `conflict`.
 */
import { VisorError, type ErrorKind } from '../../core/errors.js';
import { errorInFile } from '../file-io.js';

export type VhdErrorCode =
  | 'vhd-not-found' //              no file at the path given
  | 'vhd-truncated' //              the file ends before a structure it must hold
  | 'vhd-bad-cookie' //             "conectix" or "cxsparse" is missing
  | 'vhd-bad-checksum' //           a footer's or dynamic header's one's-complement sum is wrong
  | 'vhd-unsupported-version' //    file format or header version other than 1.0
  | 'vhd-unsupported-type' //       disk type other than 2 (fixed), 3 (dynamic), 4 (differencing)
  | 'vhd-absurd-size' //            virtual size zero, not a sector multiple, or over 2040 GiB
  | 'vhd-bad-block-size' //         not a power of two from 512 bytes to 256 MiB
  | 'vhd-bad-header-offset' //      the footer's data offset cannot hold a dynamic header
  | 'vhd-bat-too-small' //          Max Table Entries cannot cover the virtual size
  | 'vhd-bat-too-large' //          a BAT over 256 MiB (we refuse to read it into memory)
  | 'vhd-bat-out-of-range' //       a BAT entry points into the metadata or past the end of the file
  | 'vhd-bat-overlap' //            two blocks share file space
  | 'vhd-bad-parent-locator' //     a locator's data lies outside the file or is too long
  | 'vhd-parent-not-found' //       no locator leads to a file
  | 'vhd-parent-mismatch' //        the parent's unique id differs from the one the child names
  | 'vhd-parent-loop' //            the chain comes back to a file already in it
  | 'vhd-chain-too-deep' //         more parents than MAX_CHAIN_DEPTH
  | 'vhd-read-only' //              a write on a read-only open
  | 'vhd-out-of-range' //           a read or write beyond the virtual disk
  | 'vhd-bad-argument' //           a caller's option is out of range
  | 'vhd-closed' //                 I/O after close
  | 'vhd-shrink-refused' //         resize to a smaller size
  | 'vhd-io-failed'; //             the OS refused a read or write

const KIND: Partial<Record<VhdErrorCode, ErrorKind>> = {
  'vhd-read-only': 'conflict',
  'vhd-closed': 'conflict',
  'vhd-shrink-refused': 'conflict',
  'vhd-not-found': 'not-found',
  'vhd-parent-not-found': 'not-found',
  'vhd-io-failed': 'failed',
};

const CORRUPT_HINT =
  'The file is not a valid VHD or is damaged. Check that it was copied whole; "vhdiinfo" or Hyper-V\'s "Inspect Disk" may say more.';

export function vhdError(code: VhdErrorCode, message: string, details?: Record<string, unknown>, hint?: string): VisorError {
  const kind = KIND[code] ?? 'invalid';
  return new VisorError(kind, code, message, {
    field: 'path',
    hint: hint ?? (kind === 'invalid' && code !== 'vhd-bad-argument' ? CORRUPT_HINT : undefined),
    details,
  });
}

/** Adds the file's path to a VisorError raised while handling `path`; wraps anything else. */
export function inFile(path: string, error: unknown): VisorError {
  return errorInFile(path, error, 'vhd-io-failed');
}

/** Formats a number the way messages quote values: decimal and, when large, hex. */
export function quote(value: number | bigint): string {
  return value >= 4096 ? `${value} (0x${value.toString(16)})` : `${value}`;
}
