import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VisorError } from '../../core/index.js';
import { ENGINE_ERROR_CODES } from './engine-errors.js';
import { QmpClient } from './qmp-client.js';

/** QEMU 10.0.2's greeting, verbatim. */
const GREETING =
  '{"QMP": {"version": {"qemu": {"micro": 2, "minor": 0, "major": 10}, "package": "Debian 1:10.0.2+ds-2+deb13u1~bpo12+1"}, "capabilities": ["oob"]}}';

type Handler = (command: { execute: string; arguments?: Record<string, unknown>; id?: unknown }, client: Socket) => unknown;

/**
 * A fake QMP server at the far side of a real unix socket: greets, insists on qmp_capabilities
 * first (as QEMU does), answers through `handler` (undefined: no answer), echoes ids.
 */
class FakeQmp {
  readonly clients = new Set<Socket>();
  handler: Handler = () => ({});
  constructor(readonly server: Server) {}

  static async listen(path: string): Promise<FakeQmp> {
    const fake = new FakeQmp(createServer());
    fake.server.on('connection', (client) => fake.#serve(client));
    await new Promise<void>((resolve) => fake.server.listen(path, resolve));
    return fake;
  }

  event(name: string, data: Record<string, unknown> = {}): void {
    const line = JSON.stringify({ event: name, data, timestamp: { seconds: 1, microseconds: 2 } });
    for (const client of this.clients) client.write(`${line}\r\n`);
  }

  async close(): Promise<void> {
    for (const client of this.clients) client.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  #serve(client: Socket): void {
    this.clients.add(client);
    client.on('close', () => this.clients.delete(client));
    client.write(`${GREETING}\r\n`);
    let negotiated = false;
    let buffer = '';
    client.on('data', (chunk) => {
      buffer += chunk.toString();
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const command = JSON.parse(buffer.slice(0, newline)) as { execute: string; id?: unknown };
        buffer = buffer.slice(newline + 1);
        const reply = (body: Record<string, unknown>): void => {
          client.write(`${JSON.stringify(command.id === undefined ? body : { ...body, id: command.id })}\r\n`);
        };
        if (!negotiated) {
          if (command.execute === 'qmp_capabilities') {
            negotiated = true;
            reply({ return: {} });
          } else {
            reply({ error: { class: 'CommandNotFound', desc: 'Expecting capabilities negotiation with \'qmp_capabilities\'' } });
          }
          continue;
        }
        const answer = this.handler(command, client);
        if (answer instanceof Error) reply({ error: { class: 'GenericError', desc: answer.message } });
        else if (answer !== undefined) reply({ return: answer });
      }
    });
  }
}

describe('QmpClient against a fake QMP server', () => {
  let dir: string;
  let path: string;
  let fake: FakeQmp;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'visor-qmp-'));
    path = join(dir, 'qmp.sock');
    fake = await FakeQmp.listen(path);
  });
  after(async () => {
    await fake.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('reads the greeting, negotiates and runs typed commands', async () => {
    fake.handler = (command) => (command.execute === 'query-status' ? { status: 'running', running: true } : new Error('unexpected'));
    const qmp = await QmpClient.connect(path, { timeoutMs: 2000 });
    try {
      assert.equal(qmp.greeting?.QMP.version.qemu.major, 10);
      assert.deepEqual(await qmp.queryStatus(), { status: 'running', running: true });
    } finally {
      qmp.dispose();
    }
  });

  it('matches answers to commands by id, even out of order', async () => {
    const held: Array<() => void> = [];
    fake.handler = (command, client) => {
      if (command.execute === 'slow') {
        held.push(() => client.write(`${JSON.stringify({ return: 'slow', id: command.id })}\n`));
        return undefined;
      }
      return 'fast';
    };
    const qmp = await QmpClient.connect(path);
    try {
      const slow = qmp.execute<string>('slow');
      const fast = qmp.execute<string>('fast');
      assert.equal(await fast, 'fast');
      held.forEach((answer) => answer());
      assert.equal(await slow, 'slow');
    } finally {
      qmp.dispose();
    }
  });

  it('turns QEMU\'s error into a qmp-command-failed VisorError', async () => {
    fake.handler = () => new Error("The command cont has not been found");
    const qmp = await QmpClient.connect(path);
    try {
      await assert.rejects(qmp.cont(), (error: unknown) => {
        assert.ok(error instanceof VisorError);
        assert.equal(error.code, ENGINE_ERROR_CODES.qmpCommandFailed);
        assert.match(error.message, /"cont".*has not been found/);
        return true;
      });
    } finally {
      qmp.dispose();
    }
  });

  it('fans events out and waits for one matching a predicate', async () => {
    fake.handler = () => ({});
    const qmp = await QmpClient.connect(path);
    try {
      const seen: string[] = [];
      qmp.on('event', (event) => seen.push(event.event));
      const shutdown = qmp.waitForEvent('SHUTDOWN', (event) => event.data['reason'] === 'host-qmp-quit', { timeoutMs: 2000 });
      fake.event('STOP');
      fake.event('SHUTDOWN', { guest: true, reason: 'guest-shutdown' });
      fake.event('SHUTDOWN', { guest: false, reason: 'host-qmp-quit' });
      const event = await shutdown;
      assert.equal(event.data['reason'], 'host-qmp-quit');
      assert.deepEqual(seen, ['STOP', 'SHUTDOWN', 'SHUTDOWN']);
    } finally {
      qmp.dispose();
    }
  });

  it('times out a command with a typed error and ignores its late answer', async () => {
    fake.handler = (command) => (command.execute === 'never' ? undefined : 'ok');
    const qmp = await QmpClient.connect(path);
    try {
      await assert.rejects(qmp.execute('never', undefined, { timeoutMs: 50 }), (e: unknown) => e instanceof VisorError && e.code === 'timeout');
      assert.equal(await qmp.execute('next'), 'ok');
    } finally {
      qmp.dispose();
    }
  });

  it('honours an AbortSignal', async () => {
    fake.handler = () => undefined;
    const qmp = await QmpClient.connect(path);
    try {
      const controller = new AbortController();
      const pending = qmp.execute('hang', undefined, { signal: controller.signal });
      controller.abort();
      await assert.rejects(pending, (e: unknown) => e instanceof VisorError && e.kind === 'cancelled');
      await assert.rejects(
        qmp.waitForEvent('X', undefined, { signal: AbortSignal.abort() }),
        (e: unknown) => e instanceof VisorError && e.kind === 'cancelled',
      );
    } finally {
      qmp.dispose();
    }
  });

  it('emits close and fails pending work when QEMU goes away', async () => {
    fake.handler = (command, client) => {
      if (command.execute === 'quit') {
        client.write(`${JSON.stringify({ return: {}, id: command.id })}\n`);
        client.end();
      }
      return undefined;
    };
    const qmp = await QmpClient.connect(path);
    const closed = new Promise<VisorError | undefined>((resolve) => qmp.once('close', resolve));
    const waiting = qmp.waitForEvent('NEVER', undefined, { timeoutMs: 5000 });
    const pending = qmp.execute('hang', undefined, { timeoutMs: 5000 });
    await qmp.quit();
    const error = await closed;
    assert.equal(error?.code, ENGINE_ERROR_CODES.qmpDisconnected);
    await assert.rejects(waiting, (e: unknown) => e instanceof VisorError && e.code === ENGINE_ERROR_CODES.qmpDisconnected);
    await assert.rejects(pending, (e: unknown) => e instanceof VisorError && e.code === ENGINE_ERROR_CODES.qmpDisconnected);
    assert.equal(qmp.closed, true);
    await assert.rejects(qmp.queryStatus(), (e: unknown) => e instanceof VisorError && e.code === ENGINE_ERROR_CODES.qmpDisconnected);
    qmp.dispose();
  });

  it('fails fast with a typed error when no one listens', async () => {
    await assert.rejects(QmpClient.connect(join(dir, 'nobody.sock'), { timeoutMs: 1000 }), (e: unknown) => e instanceof VisorError && e.code === 'socket-unavailable');
  });

  it('times out when the greeting never comes (another client holds the monitor)', async () => {
    const held: Socket[] = [];
    const silent = createServer((socket) => held.push(socket));
    const silentPath = join(dir, 'silent.sock');
    await new Promise<void>((resolve) => silent.listen(silentPath, resolve));
    try {
      await assert.rejects(QmpClient.connect(silentPath, { timeoutMs: 100 }), (e: unknown) => e instanceof VisorError && e.code === 'timeout');
    } finally {
      held.forEach((socket) => socket.destroy());
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
