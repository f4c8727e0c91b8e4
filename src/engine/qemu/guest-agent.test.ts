import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VisorError } from '../../core/index.js';
import { ENGINE_ERROR_CODES } from './engine-errors.js';
import { GuestAgent } from './guest-agent.js';

interface Request {
  execute: string;
  arguments?: Record<string, unknown>;
}

/**
 * A fake qemu-ga at the far side of a unix socket, behaving as the real one: no greeting, no
 * ids, 0xFF before the guest-sync-delimited answer, guest-exec + guest-exec-status with base64
 * output, silence on guest-shutdown. `stale` is written before the next sync answer, as a reply
 * to a command an earlier client gave up on would be.
 */
class FakeAgent {
  readonly requests: Request[] = [];
  readonly clients = new Set<Socket>();
  stale = '';
  silent = false;
  statusPollsBeforeExit = 2;
  constructor(readonly server: Server) {}

  static async listen(path: string): Promise<FakeAgent> {
    const fake = new FakeAgent(createServer());
    fake.server.on('connection', (client) => fake.#serve(client));
    await new Promise<void>((resolve) => fake.server.listen(path, resolve));
    return fake;
  }

  async close(): Promise<void> {
    for (const client of this.clients) client.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  #serve(client: Socket): void {
    this.clients.add(client);
    client.on('close', () => this.clients.delete(client));
    let buffer = Buffer.alloc(0);
    const polls = new Map<number, number>();
    const send = (body: unknown): void => void client.write(`${JSON.stringify(body)}\n`);
    client.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      let newline: number;
      while ((newline = buffer.indexOf(0x0a)) >= 0) {
        const line = buffer.subarray(0, newline).toString('latin1').replace(/^\xff/, '');
        buffer = buffer.subarray(newline + 1);
        const request = JSON.parse(line) as Request;
        this.requests.push(request);
        if (this.silent) continue;
        const args = request.arguments ?? {};
        switch (request.execute) {
          case 'guest-sync-delimited':
            if (this.stale) client.write(this.stale);
            this.stale = '';
            client.write(Buffer.concat([Buffer.from([0xff]), Buffer.from(`${JSON.stringify({ return: args['id'] })}\n`)]));
            break;
          case 'guest-ping':
            send({ return: {} });
            break;
          case 'guest-exec': {
            if (args['path'] === '/nonexistent') {
              send({ error: { class: 'GenericError', desc: "Guest agent command failed, error was 'Failed to execute child process'" } });
              break;
            }
            polls.set(42, 0);
            send({ return: { pid: 42 } });
            break;
          }
          case 'guest-exec-status': {
            const seen = (polls.get(42) ?? 0) + 1;
            polls.set(42, seen);
            if (seen <= this.statusPollsBeforeExit) {
              send({ return: { exited: false } });
              break;
            }
            const execArgs = this.requests.find((r) => r.execute === 'guest-exec')?.arguments ?? {};
            const input = Buffer.from(String(execArgs['input-data'] ?? ''), 'base64').toString();
            const out = `args=${JSON.stringify(execArgs['arg'])} input=${input}`;
            send({ return: { exited: true, exitcode: 3, 'out-data': Buffer.from(out).toString('base64'), 'err-data': Buffer.from('oops').toString('base64') } });
            break;
          }
          case 'guest-shutdown':
            break; // the real agent answers nothing: the guest goes down
          default:
            send({ error: { class: 'CommandNotFound', desc: `The command ${request.execute} has not been found` } });
        }
      }
    });
  }
}

describe('GuestAgent against a fake agent', () => {
  let dir: string;
  let path: string;
  let fake: FakeAgent;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'visor-qga-'));
    path = join(dir, 'qga.sock');
    fake = await FakeAgent.listen(path);
  });
  after(async () => {
    await fake.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('synchronises with 0xFF + guest-sync-delimited, skipping stale output', async () => {
    fake.stale = '{"return": {"pid": 7}}\n{"return": 123';
    const agent = await GuestAgent.connect(path, { timeoutMs: 2000 });
    try {
      assert.equal(fake.requests.at(-1)?.execute, 'guest-sync-delimited');
      await agent.ping();
      assert.equal(fake.requests.at(-1)?.execute, 'guest-ping');
    } finally {
      agent.dispose();
    }
  });

  it('runs a command: input in base64, polls guest-exec-status, decodes output', async () => {
    const agent = await GuestAgent.connect(path);
    try {
      const result = await agent.exec('/bin/sh', ['-c', 'cat'], { input: 'hello', timeoutMs: 5000 });
      assert.deepEqual(result, { exitCode: 3, stdout: 'args=["-c","cat"] input=hello', stderr: 'oops' });
      const exec = fake.requests.filter((r) => r.execute === 'guest-exec').at(-1);
      assert.equal(exec?.arguments?.['capture-output'], true);
      assert.equal(exec?.arguments?.['input-data'], Buffer.from('hello').toString('base64'));
    } finally {
      agent.dispose();
    }
  });

  it('turns the agent\'s error into a typed VisorError', async () => {
    const agent = await GuestAgent.connect(path);
    try {
      await assert.rejects(agent.exec('/nonexistent'), (e: unknown) => e instanceof VisorError && e.code === ENGINE_ERROR_CODES.agentCommandFailed);
      await agent.ping(); // still usable
    } finally {
      agent.dispose();
    }
  });

  it('sends guest-shutdown and accepts the silence that follows', async () => {
    const agent = await GuestAgent.connect(path);
    try {
      await agent.shutdown({ timeoutMs: 100 });
      const request = fake.requests.at(-1);
      assert.equal(request?.execute, 'guest-shutdown');
      assert.deepEqual(request?.arguments, { mode: 'powerdown' });
    } finally {
      agent.dispose();
    }
  });

  it('says the agent is unavailable when nothing answers the sync', async () => {
    fake.silent = true;
    try {
      await assert.rejects(GuestAgent.connect(path, { timeoutMs: 100 }), (e: unknown) => e instanceof VisorError && e.code === ENGINE_ERROR_CODES.agentUnavailable);
    } finally {
      fake.silent = false;
    }
  });

  it('honours an AbortSignal during exec', async () => {
    fake.statusPollsBeforeExit = 1_000_000;
    const agent = await GuestAgent.connect(path);
    try {
      const controller = new AbortController();
      const running = agent.exec('/bin/sleep', ['100'], { signal: controller.signal });
      setTimeout(() => controller.abort(), 150);
      await assert.rejects(running, (e: unknown) => e instanceof VisorError && e.kind === 'cancelled');
    } finally {
      fake.statusPollsBeforeExit = 2;
      agent.dispose();
    }
  });
});
