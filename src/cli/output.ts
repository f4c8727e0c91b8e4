import { VisorError, asVisorError } from '../api/index.js';
import { EXIT_OF_KIND } from './exit-codes.js';

/** Prints `rows` as a table with a header, columns padded to their widest cell. */
export function printTable(headers: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const out = [line(headers), ...rows.map(line)].join('\n');
  process.stdout.write(`${out}\n`);
}

/** Prints `label: value` pairs aligned. */
export function printFields(fields: ReadonlyArray<readonly [string, string]>): void {
  const width = Math.max(...fields.map(([k]) => k.length)) + 1;
  process.stdout.write(fields.map(([k, v]) => `${`${k}:`.padEnd(width)}  ${v}`).join('\n') + '\n');
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** `error: MESSAGE` and `hint: HINT` on stderr; answers the exit code for the error's kind. */
export function reportError(error: unknown): number {
  const e = asVisorError(error);
  process.stderr.write(`error: ${e.message}\n`);
  if (e.hint) process.stderr.write(`hint: ${e.hint}\n`);
  if (e.kind === 'bug' && process.env.VISOR_DEBUG) process.stderr.write(`${e.stack}\n`);
  return EXIT_OF_KIND[e.kind];
}

export function usageError(message: string, hint?: string): VisorError {
  return new VisorError('invalid', 'usage', message, { hint });
}

/** "2h 05m", "3m 12s", "40s" since `iso`. */
export function formatUptime(iso: string | null, now = Date.now()): string {
  if (!iso) return '-';
  const seconds = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  if (d > 0) return `${d}d ${String(h).padStart(2, '0')}h`;
  if (h > 0) return `${h}h ${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m ${String(s).padStart(2, '0')}s`;
  return `${s}s`;
}
