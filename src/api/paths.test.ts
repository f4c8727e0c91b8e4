import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolvePaths } from './paths.js';

test('root uses the system folders', () => {
  const p = resolvePaths({ env: {}, uid: 0, homeDir: '/root' });
  assert.equal(p.home, '/var/lib/visor');
  assert.equal(p.run, '/run/visor');
  assert.equal(p.socket, '/run/visor/visord.sock');
  assert.equal(p.token, '/var/lib/visor/api-token');
});

test('a user uses XDG folders, and VISOR_HOME/VISOR_RUN override both', () => {
  const user = resolvePaths({ env: { XDG_RUNTIME_DIR: '/run/user/1000' }, uid: 1000, homeDir: '/home/ada' });
  assert.equal(user.home, '/home/ada/.local/share/visor');
  assert.equal(user.run, '/run/user/1000/visor');
  assert.equal(resolvePaths({ env: {}, uid: 1000, homeDir: '/home/ada' }).run, '/tmp/visor-1000');
  const isolated = resolvePaths({ env: { VISOR_HOME: '/tmp/h', VISOR_RUN: '/tmp/r' }, uid: 0 });
  assert.deepEqual(isolated, {
    home: '/tmp/h',
    run: '/tmp/r',
    socket: '/tmp/r/visord.sock',
    log: '/tmp/r/visord.log',
    token: '/tmp/h/api-token',
  });
});
