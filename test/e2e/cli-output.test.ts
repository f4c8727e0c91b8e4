import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { VisorClient } from '../../src/api/index.js';
import type { VmView } from '../../src/core/index.js';
import { VISOR_BIN, VisorTestHost } from '../support/visor-host.js';

const run = promisify(execFile);

/**
 * Output larger than a pipe's 64 KiB buffer reaches the reader whole: the CLI must not exit
 * before stdout is drained (`visor vm list --json` with 45 VMs is over 100 KiB here).
 */
test('visor vm list --json through a pipe is complete with many VMs', { timeout: 120_000 }, async (t) => {
  const host = await VisorTestHost.create();
  t.after(() => host.dispose());
  await host.startDaemon();
  const client = new VisorClient({ socketPath: join(host.run, 'visord.sock') });
  for (let i = 0; i < 45; i++) await client.waitForJob(await client.createVm({ name: `vm${String(i).padStart(2, '0')}`, notes: 'x'.repeat(1000) }));
  // A reader that starts late (as `visor ... | node -e ...` does): the pipe fills, the CLI must wait.
  const { stdout } = await run('sh', ['-c', `"${VISOR_BIN}" vm list --json | (sleep 0.5; cat)`], { env: host.env, maxBuffer: 16 * 1024 * 1024 });
  assert.ok(stdout.length > 65_536, `the output is larger than a pipe buffer (${stdout.length} bytes)`);
  const vms = JSON.parse(stdout) as VmView[];
  assert.equal(vms.length, 45);
});
