import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeExit } from './vm-exit.js';

const shutdown = (guest: boolean, reason: string) => ({ event: 'SHUTDOWN', data: { guest, reason }, timestamp: { seconds: 0, microseconds: 0 } });

describe('describeExit', () => {
  it('names guest power-off, host quit, a signal and a crash', () => {
    assert.equal(describeExit(shutdown(true, 'guest-shutdown'), null).kind, 'guest-shutdown');
    assert.equal(describeExit(shutdown(false, 'host-qmp-quit'), null).kind, 'host-quit');
    const signal = describeExit(shutdown(false, 'host-signal'), 'qemu-system-x86_64: terminating on signal 15 from pid 7 (kill)');
    assert.equal(signal.kind, 'host-signal');
    assert.match(signal.reason, /signal 15/);
    const crash = describeExit(null, 'qemu-system-x86_64: block.c:123: assertion failed');
    assert.equal(crash.kind, 'crashed');
    assert.match(crash.reason, /assertion failed/);
    assert.equal(describeExit(null, null).reason, 'QEMU exited unexpectedly without saying why.');
  });
});
