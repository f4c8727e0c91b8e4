import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { KeyedMutex } from './keyed-mutex.js';

test('operations on one key run in order, a failure does not block the next', async () => {
  const mutex = new KeyedMutex();
  const log: string[] = [];
  const a = mutex.run('vm1', async () => {
    await sleep(20);
    log.push('a');
    throw new Error('a failed');
  });
  const b = mutex.run('vm1', async () => {
    log.push('b');
    return 2;
  });
  const c = mutex.run('vm2', async () => {
    log.push('c');
  });
  await assert.rejects(a, /a failed/);
  assert.equal(await b, 2);
  await c;
  assert.deepEqual(log, ['c', 'a', 'b']);
});
