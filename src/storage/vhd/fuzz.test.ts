/**
 * Fuzzing the parsers with mutated footers, dynamic headers, BATs, locators and truncations:
 * every open and read either succeeds or throws a VisorError, never anything else, never hangs,
 * and never writes to the file. Time-bounded; seeded, so a failure can be replayed.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { test } from 'node:test';
import { VisorError } from '../../core/errors.js';
import { vhdChecksum } from './footer.js';
import { createVhd, VhdFile } from './index.js';
import { pattern, prng, withScratch } from './test-support.js';

const MiB = 1024 * 1024;
const BUDGET_MS = 4_000;

async function seedFiles(dir: (n: string) => string): Promise<{ name: string; bytes: Buffer }[]> {
  await createVhd(dir('base.vhd'), { type: 'dynamic', size: 6 * MiB, blockSize: 512 * 1024 });
  const b = await VhdFile.open(dir('base.vhd'), { readOnly: false });
  await b.write(pattern(MiB, 1), 512 * 1024);
  await b.write(pattern(4096, 2), 5 * MiB);
  await b.close();
  await createVhd(dir('child.vhd'), { type: 'differencing', parentPath: dir('base.vhd') });
  const c = await VhdFile.open(dir('child.vhd'), { readOnly: false });
  await c.write(pattern(10_000, 3), 700_000);
  await c.close();
  await createVhd(dir('fixed.vhd'), { type: 'fixed', size: MiB });
  return Promise.all(['base.vhd', 'child.vhd', 'fixed.vhd'].map(async (name) => ({ name, bytes: await readFile(dir(name)) })));
}

test('fuzz: mutated footers, headers, BATs and locators give VisorErrors only and are never written', { timeout: 30_000 }, async () => {
  await withScratch(async (s) => {
    const seeds = await seedFiles(s.path);
    const rand = prng(0x5eed);
    const pick = (n: number) => Math.floor(rand() * n);
    const started = Date.now();
    let iterations = 0;
    let opened = 0;
    const codes = new Map<string, number>();
    while (Date.now() - started < BUDGET_MS) {
      iterations++;
      const seed = seeds[pick(seeds.length)]!;
      const bytes = Buffer.from(seed.bytes);
      const end = bytes.length - 512;
      const regions = seed.name === 'fixed.vhd' ? [[end, 512]] : [[end, 512], [0, 512], [512, 1024], [1536, 512], [2048, 1536], [3584, 1024]];
      let mutated = bytes;
      if (rand() < 0.08) {
        mutated = bytes.subarray(0, pick(bytes.length));
      } else {
        for (let k = 1 + pick(4); k > 0; k--) {
          const [from, len] = regions[pick(regions.length)]! as [number, number];
          const at = from + pick(Math.min(len, 128 + (rand() < 0.3 ? len : 0)));
          if (at >= bytes.length) continue;
          bytes[at] = rand() < 0.5 ? pick(256) : (bytes[at] ?? 0) ^ (1 << pick(8));
        }
        // Half the time, make the checksums right again so the deeper checks are reached.
        if (rand() < 0.5) {
          bytes.writeUInt32BE(vhdChecksum(bytes.subarray(end, end + 512), 64), end + 64);
          if (seed.name !== 'fixed.vhd') {
            bytes.writeUInt32BE(vhdChecksum(bytes.subarray(0, 512), 64), 64);
            bytes.writeUInt32BE(vhdChecksum(bytes.subarray(512, 1536), 36), 512 + 36);
          }
        }
      }
      const path = s.path(`m-${seed.name}`);
      await writeFile(path, mutated);
      try {
        const f = await VhdFile.open(path);
        opened++;
        try {
          const buf = Buffer.alloc(MiB);
          for (let pos = 0; pos < f.virtualSize && pos < 8 * MiB; pos += MiB) {
            await f.readInto(buf.subarray(0, Math.min(MiB, f.virtualSize - pos)), pos);
          }
        } finally {
          await f.close();
        }
      } catch (error) {
        if (!(error instanceof VisorError)) {
          assert.fail(`iteration ${iterations} (${seed.name}) threw ${String(error)}\n${(error as Error).stack}`);
        }
        codes.set(error.code, (codes.get(error.code) ?? 0) + 1);
      }
      assert.ok((await readFile(path)).equals(mutated), `iteration ${iterations}: the file was written`);
    }
    assert.ok(iterations > 100, `only ${iterations} iterations`);
    // The mutations reached several distinct checks.
    for (const code of ['vhd-bad-cookie', 'vhd-bad-checksum', 'vhd-bat-out-of-range']) assert.ok(codes.has(code), `no ${code} in ${[...codes.keys()].join(', ')}`);
    console.log(`fuzz: ${iterations} iterations, ${opened} opened, ${JSON.stringify(Object.fromEntries(codes))}`);
  });
});
