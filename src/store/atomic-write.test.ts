import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { writeFileAtomic } from './atomic-write.js';

const OLD = JSON.stringify({ version: 'old', pad: 'o'.repeat(50_000) });
const NEW = JSON.stringify({ version: 'new', pad: 'n'.repeat(70_000) });

test('a process killed at any point leaves the old or the new content, never a mix', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'visor-atomic-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const target = join(dir, 'vm.json');
  await writeFileAtomic(target, OLD);
  const module = pathToFileURL(join(import.meta.dirname, 'atomic-write.js')).href;
  // The child rewrites the file as fast as it can, alternating old and new, until killed.
  const script = `const { writeFileAtomic } = await import(${JSON.stringify(module)});
    const texts = [${JSON.stringify(NEW)}, ${JSON.stringify(OLD)}];
    for (let i = 0; ; i++) await writeFileAtomic(${JSON.stringify(target)}, texts[i % 2]);`;
  for (let round = 0; round < 12; round += 1) {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
    await sleep(60 + Math.random() * 80);
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    const text = await readFile(target, 'utf8');
    assert.ok(text === OLD || text === NEW, `round ${round}: content is neither old nor new (${text.length} bytes)`);
  }
  // Leftover temp files are allowed (the store ignores dot files) but the target stays whole.
  const names = await readdir(dir);
  assert.ok(names.includes('vm.json'));
});
