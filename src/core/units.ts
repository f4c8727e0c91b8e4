import { invalid } from './errors.js';

/** Binary units, as Hyper-V and QEMU use them: "512M" is 512 MiB. */
const UNIT_SHIFT: Record<string, number> = { '': 0, B: 0, K: 10, M: 20, G: 30, T: 40, P: 50 };
const SIZE_PATTERN = /^\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(?:i?B)?\s*$/i;

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
export const TiB = 1024 * GiB;

/**
 * Parses a size such as "512M", "2G", "1.5T", "4096" (bytes) or "64KiB" into bytes.
 * Throws an `invalid` error naming `field` for anything else ("12XB", "-1", "").
 */
export function parseSize(text: string | number, field: string): number {
  if (typeof text === 'number') {
    if (Number.isSafeInteger(text) && text >= 0) return text;
    throw invalid(field, `${field} must be a whole number of bytes: current value is ${text}.`);
  }
  const match = SIZE_PATTERN.exec(text);
  if (!match) {
    throw invalid(
      field,
      `${field} is not a size: current value is "${text}".`,
      'Write a number with an optional unit K, M, G or T (binary), for example 512M or 2G.',
    );
  }
  const [, digits = '', unit = ''] = match;
  const bytes = Number(digits) * 2 ** (UNIT_SHIFT[unit.toUpperCase()] ?? 0);
  if (!Number.isSafeInteger(Math.round(bytes))) {
    throw invalid(field, `${field} is too large: current value is "${text}".`);
  }
  return Math.round(bytes);
}

/** Formats bytes the way people write them: 536870912 → "512M", 1610612736 → "1.5G". */
export function formatSize(bytes: number): string {
  const units = ['', 'K', 'M', 'G', 'T', 'P'];
  let value = bytes;
  let index = 0;
  while (value >= 1024 && index < units.length - 1) {
    value /= 1024;
    index += 1;
  }
  const text = Number.isInteger(value) ? String(value) : value.toFixed(value < 10 ? 2 : 1);
  return `${text.replace(/\.?0+$/, (m) => (text.includes('.') ? '' : m))}${units[index]}`;
}
