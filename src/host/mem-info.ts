/** Host memory in bytes, from /proc/meminfo. */
export interface MemInfo {
  total: number;
  /** MemAvailable: what can be given out without swapping (kernel's estimate). */
  available: number;
}

/** Parses /proc/meminfo ("MemTotal:  16318204 kB"). Pure. Throws if MemTotal is missing. */
export function parseMeminfo(text: string): MemInfo {
  const fields = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^(\w+(?:\(\w+\))?):\s+(\d+)(?:\s+kB)?$/.exec(line.trim());
    if (match) fields.set(match[1] ?? '', Number(match[2]) * (line.includes('kB') ? 1024 : 1));
  }
  const total = fields.get('MemTotal');
  if (total === undefined) throw new Error('/proc/meminfo has no MemTotal line.');
  // Kernels before 3.14 lack MemAvailable: estimate it as free + page cache.
  const available = fields.get('MemAvailable') ?? (fields.get('MemFree') ?? 0) + (fields.get('Cached') ?? 0);
  return { total, available };
}
