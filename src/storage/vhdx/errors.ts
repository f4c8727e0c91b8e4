/**
 * The ways a VHDX file can be wrong, each a VisorError code. Parsers throw these with the value
 * they found; `VhdxFile` adds the path. A corrupt file is the caller's input (`invalid`); a
 * failed read or write is the outside world (`failed`); a write on a read-only open is `conflict`.
 */
import { VisorError, type ErrorKind } from '../../core/errors.js';
import { errorInFile } from '../file-io.js';

export type VhdxErrorCode =
  | 'vhdx-truncated' //               the file ends before a structure it must hold
  | 'vhdx-bad-signature' //           a structure's magic bytes are wrong
  | 'vhdx-bad-checksum' //            a CRC-32C does not match
  | 'vhdx-no-valid-header' //         neither header is valid
  | 'vhdx-ambiguous-header' //        both headers valid, same sequence number, different content
  | 'vhdx-unsupported-version' //     Version != 1, or LogVersion != 0 with a log to replay
  | 'vhdx-bad-log-location' //        LogOffset/LogLength not 1 MiB multiples or overlapping
  | 'vhdx-bad-region-table' //        entry count, offsets, lengths, duplicates
  | 'vhdx-missing-region' //          no BAT or no metadata region
  | 'vhdx-unknown-required-region' // a required region we do not know
  | 'vhdx-region-overlap' //          regions overlap each other, the header section or the log
  | 'vhdx-bad-metadata-table' //      entry count, offsets, lengths, duplicates, overlaps
  | 'vhdx-missing-metadata' //        a required metadata item is absent
  | 'vhdx-unknown-required-metadata' // a required metadata item we do not know
  | 'vhdx-bad-block-size' //          not a power of two in 1..256 MiB
  | 'vhdx-bad-sector-size' //         not 512 or 4096
  | 'vhdx-absurd-size' //             virtual size zero, over 64 TiB or not a sector multiple
  | 'vhdx-bad-parent-locator' //      malformed locator, unknown type, missing keys
  | 'vhdx-bat-too-small' //           the BAT region cannot hold the entries the size needs
  | 'vhdx-bad-bat-entry' //           a reserved state or a state invalid for this disk type
  | 'vhdx-bat-out-of-range' //        a block offset inside the header section or past the file
  | 'vhdx-bat-overlap' //             two blocks, or a block and a region, share file space
  | 'vhdx-log-corrupt' //             LogGuid set but no valid active sequence, or bad descriptor
  | 'vhdx-log-truncated' //           file shorter than the active sequence's FlushedFileOffset
  | 'vhdx-log-replay-required' //     a read-only open met a log and was told not to replay it
  | 'vhdx-parent-not-found' //        no locator path leads to a file
  | 'vhdx-parent-mismatch' //         parent's DataWriteGuid or sector size differs
  | 'vhdx-parent-loop' //             the chain comes back to a file already in it
  | 'vhdx-chain-too-deep' //          more parents than MAX_CHAIN_DEPTH
  | 'vhdx-read-only' //               a write on a read-only open
  | 'vhdx-out-of-range' //            a read or write beyond the virtual disk
  | 'vhdx-bad-argument' //            a caller's option is out of range
  | 'vhdx-closed' //                  I/O after close
  | 'vhdx-shrink-over-data' //        resize would drop data
  | 'vhdx-io-failed'; //              the OS refused a read or write

const KIND: Partial<Record<VhdxErrorCode, ErrorKind>> = {
  'vhdx-read-only': 'conflict',
  'vhdx-closed': 'conflict',
  'vhdx-shrink-over-data': 'conflict',
  'vhdx-log-replay-required': 'conflict',
  'vhdx-parent-not-found': 'not-found',
  'vhdx-io-failed': 'failed',
};

const CORRUPT_HINT =
  'The file is not a valid VHDX or is damaged. Check that it was copied whole; Hyper-V\'s "Inspect Disk" or "qemu-img check" may say more.';

export function vhdxError(
  code: VhdxErrorCode,
  message: string,
  details?: Record<string, unknown>,
  hint?: string,
): VisorError {
  const kind = KIND[code] ?? 'invalid';
  return new VisorError(kind, code, message, {
    field: 'path',
    hint: hint ?? (kind === 'invalid' ? CORRUPT_HINT : undefined),
    details,
  });
}

/** Adds the file's path to a VisorError raised while reading `path`; wraps anything else. */
export function inFile(path: string, error: unknown): VisorError {
  return errorInFile(path, error, 'vhdx-io-failed');
}

/** Formats a number the way messages quote values: decimal and, when large, hex. */
export function quote(value: number | bigint): string {
  return value >= 4096 ? `${value} (0x${value.toString(16)})` : `${value}`;
}
