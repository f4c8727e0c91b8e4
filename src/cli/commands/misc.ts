import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { formatSize, type Job } from '../../api/index.js';
import type { HostStopResult } from '../../core/index.js';
import { followJob } from '../follow-job.js';
import { withClient } from '../connect.js';
import { EXIT } from '../exit-codes.js';
import { printFields, printJson, printTable } from '../output.js';

interface JsonOption {
  json?: boolean;
}

/**
 * `visor daemon` normally never gets here: bin/visor execs the daemon's entry itself. When the
 * CLI is run some other way, run bin/visor daemon as a child in the foreground.
 */
export async function daemon(options: { listen?: string; debug?: boolean }): Promise<number> {
  const bin = fileURLToPath(new URL('../../../../bin/visor', import.meta.url));
  const args = ['daemon', ...(options.listen ? ['--listen', options.listen] : []), ...(options.debug ? ['--debug'] : [])];
  const child = spawn(bin, args, { stdio: 'inherit', env: { ...process.env, VISOR_NODE: process.execPath } });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
  return new Promise((resolve) => child.once('exit', (code) => resolve(code ?? EXIT.failed)));
}

export async function hostInfo(options: JsonOption): Promise<number> {
  const host = await withClient((c) => c.host());
  if (options.json) printJson(host);
  else printFields(flatten(host));
  return EXIT.ok;
}

export async function hostStopVms(options: JsonOption): Promise<number> {
  const results = await withClient((c) => followJob<HostStopResult[]>(c, c.stopVmsForHost(), { quiet: options.json }));
  if (options.json) printJson(results);
  else if (results.length === 0) process.stdout.write('No VM was running.\n');
  else printTable(['NAME', 'ACTION', 'STATE', 'ERROR'], results.map((r) => [r.name, r.action, r.state, r.error ?? '']));
  return results.some((r) => r.error !== null) ? EXIT.failed : EXIT.ok;
}

/** Nested host facts as `a.b: value` lines; byte counts ending in "memory"/"bytes" read as sizes. */
function flatten(value: unknown, prefix = ''): Array<[string, string]> {
  if (value === null || typeof value !== 'object') return [[prefix || 'value', show(prefix, value)]];
  if (Array.isArray(value)) {
    if (value.every((v) => v === null || typeof v !== 'object')) return [[prefix, value.map(String).join(', ') || '-']];
    return value.flatMap((v, i) => flatten(v, `${prefix}[${i}]`));
  }
  return Object.entries(value as Record<string, unknown>).flatMap(([k, v]) => flatten(v, prefix ? `${prefix}.${k}` : k));
}

function show(key: string, value: unknown): string {
  if (typeof value === 'number' && /(memory|bytes|size)/i.test(key) && value >= 1024) return `${formatSize(value)} (${value} bytes)`;
  if (value === null || value === undefined) return '-';
  return String(value);
}

export async function imageList(options: JsonOption): Promise<number> {
  const images = await withClient((c) => c.images());
  if (options.json) {
    printJson(images);
    return EXIT.ok;
  }
  if (images.length === 0) {
    process.stdout.write('No images in the library.\n');
    return EXIT.ok;
  }
  printTable(
    ['NAME', 'ARCH', 'FORMAT', 'SIZE', 'DISK', 'GEN', 'DESCRIPTION'],
    images.map((i) => [i.name, i.architecture, i.format, formatSize(i.size), formatSize(i.virtualSize), i.generations.join(','), i.description]),
  );
  return EXIT.ok;
}

export async function jobList(options: JsonOption): Promise<number> {
  const jobs = await withClient((c) => c.listJobs());
  if (options.json) {
    printJson(jobs);
    return EXIT.ok;
  }
  if (jobs.length === 0) {
    process.stdout.write('No jobs.\n');
    return EXIT.ok;
  }
  printTable(
    ['ID', 'KIND', 'TARGET', 'STATE', 'PROGRESS', 'CREATED', 'MESSAGE'],
    jobs.map((j) => [j.id, j.kind, j.target, j.state, `${Math.round(j.progress * 100)}%`, j.createdAt, j.error?.message ?? j.message ?? '']),
  );
  return EXIT.ok;
}

export async function jobShow(id: string, options: JsonOption): Promise<number> {
  const job = await withClient((c) => c.getJob(id));
  if (options.json) printJson(job);
  else printJob(job);
  return EXIT.ok;
}

export async function jobCancel(id: string, options: JsonOption): Promise<number> {
  const job = await withClient((c) => c.cancelJob(id));
  if (options.json) printJson(job);
  else process.stdout.write(`Job ${job.id} (${job.kind} ${job.target}) is ${job.state === 'running' ? 'being cancelled' : job.state}.\n`);
  return EXIT.ok;
}

function printJob(job: Job): void {
  const fields: Array<[string, string]> = [
    ['Id', job.id],
    ['Kind', job.kind],
    ['Target', job.target],
    ['State', job.state],
    ['Progress', `${Math.round(job.progress * 100)}%${job.message ? ` - ${job.message}` : ''}`],
    ['Created', job.createdAt],
    ['Started', job.startedAt ?? '-'],
    ['Finished', job.finishedAt ?? '-'],
  ];
  if (job.error) {
    fields.push(['Error', `${job.error.message} (${job.error.code})`]);
    if (job.error.hint) fields.push(['Hint', job.error.hint]);
  }
  printFields(fields);
}
