import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readCachedAccelerator, writeCachedAccelerator } from './accelerator-cache.js';
import type { CachedAccelerator } from './accelerator-cache.js';

describe('accelerator cache', () => {
  it('answers for the same boot and QEMU only', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'visor-accel-'));
    try {
      const file = join(dir, 'sub', 'accelerator.json');
      const entry: CachedAccelerator = {
        bootId: 'boot-1',
        qemu: '/usr/bin/qemu-system-x86_64 QEMU emulator version 10.0.2',
        facts: { device: 'opens', flavour: 'intel', cpuHasVirtualization: true },
        choice: { kind: 'kvm', reason: 'KVM works: a probe guest reached long mode in 40 ms' },
        decidedAt: '2026-11-24T00:00:00.000Z',
      };
      assert.equal(await readCachedAccelerator(file, entry), null, 'nothing cached yet');
      await writeCachedAccelerator(file, entry);
      assert.deepEqual(await readCachedAccelerator(file, entry), entry);
      assert.equal(await readCachedAccelerator(file, { ...entry, bootId: 'boot-2' }), null, 'a reboot invalidates it');
      assert.equal(await readCachedAccelerator(file, { ...entry, qemu: 'other' }), null, 'a QEMU upgrade invalidates it');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
