import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VisorError } from '../../core/index.js';
import { isSupportedVersion, parseQemuVersion, probeQemu } from './capabilities.js';

describe('QEMU capabilities', () => {
  it('parses --version lines', () => {
    assert.deepEqual(parseQemuVersion('QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)'), { major: 10, minor: 0, micro: 2 });
    assert.deepEqual(parseQemuVersion('QEMU emulator version 8.2.0'), { major: 8, minor: 2, micro: 0 });
    assert.deepEqual(parseQemuVersion('QEMU emulator version 9.1'), { major: 9, minor: 1, micro: 0 });
    assert.equal(parseQemuVersion('something else'), null);
  });

  it('refuses QEMU older than 8.2', () => {
    assert.equal(isSupportedVersion({ major: 7, minor: 2, micro: 19 }), false);
    assert.equal(isSupportedVersion({ major: 8, minor: 1, micro: 5 }), false);
    assert.equal(isSupportedVersion({ major: 8, minor: 2, micro: 0 }), true);
    assert.equal(isSupportedVersion({ major: 10, minor: 0, micro: 2 }), true);
  });

  it('says clearly when VISOR_QEMU names no program', async () => {
    await assert.rejects(
      probeQemu({ env: { PATH: '/nonexistent', VISOR_QEMU: '/nonexistent/qemu-system-x86_64', VISOR_QEMU_STORAGE_DAEMON: '/bin/true' } }),
      (error: unknown) => error instanceof VisorError && error.kind === 'unavailable' && error.code === 'qemu-not-found',
    );
  });

  it('finds nothing on an empty PATH', async () => {
    await assert.rejects(probeQemu({ env: { PATH: '/nonexistent' } }), (error: unknown) => error instanceof VisorError && /not installed/.test(error.message));
  });
});
