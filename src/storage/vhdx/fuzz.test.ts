/**
 * Fuzzing the parser: mutated headers, region tables, metadata, BAT and log — with checksums
 * recomputed most of the time so the mutation reaches the checks behind them. Every open and
 * read must finish quickly and either work or throw a VisorError; a read-only open must not
 * write. Seeded and time-bounded: a failure prints the seed to replay.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { VisorError } from '../../core/errors.js';
import { crc32cWithZeroedField } from './crc32c.js';
import { createVhdx } from './create.js';
import { fixHeaderChecksums, fixRegionChecksums, pattern, prng, sampleFile } from './test-support.js';
import { VhdxFile } from './vhdx-file.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const BUDGET_MS = Number(process.env['VHDX_FUZZ_MS'] ?? 8_000);
const PER_CASE_LIMIT_MS = 5_000;
const SEED = Number(process.env['VHDX_FUZZ_SEED'] ?? 20260324);

/** Where each structure lives in files made by createVhdx, and how much of it is worth mutating. */
const TARGETS = [
  { name: 'file identifier', offset: 0, length: 16 },
  { name: 'header 1', offset: 64 * KiB, length: 80 },
  { name: 'header 2', offset: 128 * KiB, length: 80 },
  { name: 'region table 1', offset: 192 * KiB, length: 16 + 2 * 32 },
  { name: 'region table 2', offset: 256 * KiB, length: 16 + 2 * 32 },
  { name: 'log', offset: 1 * MiB, length: 8 * KiB },
  { name: 'metadata table', offset: 2 * MiB, length: 32 + 6 * 32 },
  { name: 'metadata items', offset: 2 * MiB + 64 * KiB, length: 40 + 400 },
  { name: 'BAT', offset: 3 * MiB, length: 256 },
];
const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0x1000, 0x100000, 0x7fffffff, 0x80000000, 0xffffffff];

function mutate(buf: Buffer, rand: () => number): string {
  const target = TARGETS[Math.floor(rand() * TARGETS.length)]!;
  const edits: string[] = [];
  const count = 1 + Math.floor(rand() * 4);
  for (let i = 0; i < count; i++) {
    const at = target.offset + Math.floor(rand() * target.length);
    if (at + 8 > buf.length) continue;
    const kind = rand();
    if (kind < 0.35) {
      buf[at] = (rand() * 256) | 0;
    } else if (kind < 0.6) {
      buf[at]! ^= 1 << ((rand() * 8) | 0);
    } else if (kind < 0.85) {
      buf.writeUInt32LE(INTERESTING[(rand() * INTERESTING.length) | 0]!, at - (at % 4));
    } else {
      buf.writeBigUInt64LE(BigInt(Math.floor(rand() * 2 ** 20)) << BigInt((rand() * 44) | 0), at - (at % 8));
    }
    edits.push(`${target.name}@${at}`);
  }
  if (rand() < 0.8) {
    fixHeaderChecksums(buf);
    fixRegionChecksums(buf);
    const log = 1 * MiB;
    const length = buf.readUInt32LE(log + 8);
    if (buf.readUInt32LE(log) === 0x65676f6c && length > 0 && length <= MiB && length % 4096 === 0) {
      buf.writeUInt32LE(crc32cWithZeroedField(buf.subarray(log, log + length), 4), log + 4);
    }
  }
  return edits.join(', ');
}

async function exercise(path: string, rand: () => number): Promise<void> {
  let file: VhdxFile | undefined;
  try {
    file = await VhdxFile.open(path, { readOnly: true });
    const size = file.virtualSize;
    const info = file.info;
    void info;
    const span = Math.min(size, 16 * MiB);
    await file.read(0, span);
    for (let i = 0; i < 4; i++) {
      const length = 1 + Math.floor(rand() * Math.min(size, 3 * MiB));
      await file.read(Math.floor(rand() * (size - length)), length);
    }
  } finally {
    await file?.close();
  }
}

async function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`hang: ${what} took more than ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

test('mutated VHDX files open and read, or fail with a VisorError — never a crash, hang or write', async () => {
  const dir = await mkdtemp(join(existsSync('/dev/shm') ? '/dev/shm' : '/tmp', 'visor-vhdx-fuzz-'));
  try {
    // Three seeds: a dynamic disk, a file with a pending log, a differencing child.
    const plain = join(dir, 'plain.vhdx');
    await sampleFile(plain);
    const logged = join(dir, 'logged.vhdx');
    await sampleFile(logged);
    const crashing = await VhdxFile.open(logged, { readOnly: false, hooks: { afterLogFlush: () => { throw new Error('stop'); } } });
    await crashing.write(pattern(3 * MiB, 3), 4 * MiB + 512);
    await crashing.flush().catch(() => undefined);
    await crashing.close();
    await createVhdx(join(dir, 'parent.vhdx'), { type: 'dynamic', size: 8 * MiB, blockSize: 1 * MiB });
    const child = join(dir, 'child.vhdx');
    await createVhdx(child, { type: 'differencing', parentPath: join(dir, 'parent.vhdx'), blockSize: 1 * MiB });
    const c = await VhdxFile.open(child, { readOnly: false });
    await c.write(pattern(5000, 4), 1 * MiB + 100);
    await c.close();
    const seeds = await Promise.all([plain, logged, child].map((p) => readFile(p)));

    const rand = prng(SEED);
    const started = Date.now();
    const outcomes = new Map<string, number>();
    let cases = 0;
    while (Date.now() - started < BUDGET_MS) {
      const which = cases % seeds.length;
      const buf = Buffer.from(seeds[which]!);
      const edits = mutate(buf, rand);
      const path = join(dir, `case-${which}.vhdx`);
      await writeFile(path, buf);
      const what = `case ${cases} (seed ${SEED}, base ${which}: ${edits})`;
      try {
        await withDeadline(exercise(path, rand), PER_CASE_LIMIT_MS, what);
        outcomes.set('ok', (outcomes.get('ok') ?? 0) + 1);
      } catch (error) {
        if (!(error instanceof VisorError)) assert.fail(`${what}: threw ${(error as Error)?.stack ?? String(error)}`);
        outcomes.set(error.code, (outcomes.get(error.code) ?? 0) + 1);
      }
      if (cases % 8 === 0) assert.ok((await readFile(path)).equals(buf), `${what}: a read-only open wrote to the file`);
      if (cases % 10 === 5) {
        // A writable open of the same bytes may repair (replay) but must not crash either.
        const copy = join(dir, 'rw.vhdx');
        await copyFile(path, copy);
        try {
          await withDeadline(
            (async () => {
              const f = await VhdxFile.open(copy, { readOnly: false });
              try {
                await f.write(pattern(4096 + 7, cases), Math.floor(rand() * (f.virtualSize - 5000)));
              } finally {
                await f.close();
              }
            })(),
            PER_CASE_LIMIT_MS,
            `${what} (writable)`,
          );
        } catch (error) {
          if (!(error instanceof VisorError)) assert.fail(`${what} (writable): threw ${(error as Error)?.stack ?? String(error)}`);
        }
      }
      cases++;
    }
    assert.ok(cases >= 50, `only ${cases} cases ran in ${BUDGET_MS} ms`);
    console.log(`fuzz: ${cases} cases in ${Date.now() - started} ms:`, Object.fromEntries([...outcomes].sort((a, b) => b[1] - a[1])));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
