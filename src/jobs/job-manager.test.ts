import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VisorError } from '../core/index.js';
import { JobManager, DAEMON_STOPPED_REASON, type Job } from './index.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'visor-jobs-'));
  try {
    await fn(join(dir, 'jobs'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = (): void => undefined;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

test('a job runs, reports progress, records itself while running and succeeds with its result', () =>
  withDir(async (dir) => {
    const jobs = new JobManager({ dir });
    const states: string[] = [];
    const progress: number[] = [];
    jobs.events.on('job-state', (j) => states.push(j.state));
    jobs.events.on('job-progress', (j) => progress.push(j.progress));
    const gate = deferred();
    let recordWhileRunning: Job | undefined;
    const job = jobs.run('vm-start', 'web1', async (ctx) => {
      ctx.progress(0.5, 'Booting');
      ctx.progress(0.501); // below the 1% step: no event
      recordWhileRunning = JSON.parse(await readFile(join(dir, `${job.id}.json`), 'utf8')) as Job;
      await gate.promise;
      return { answer: 42 };
    });
    assert.equal(job.state, 'queued');
    assert.equal(job.kind, 'vm-start');
    assert.equal(job.target, 'web1');
    gate.resolve();
    const done = await jobs.wait(job.id);
    assert.equal(done.state, 'succeeded');
    assert.equal(done.progress, 1);
    assert.deepEqual(done.result, { answer: 42 });
    assert.ok(done.finishedAt);
    assert.equal(recordWhileRunning?.state, 'running');
    assert.deepEqual(states, ['queued', 'running', 'succeeded']);
    assert.deepEqual(progress, [0.5]);
    await jobs.close();
    assert.deepEqual(await readdir(dir), [], 'the record is removed when the job finishes');
  }));

test('a failing job carries the serialized VisorError', () =>
  withDir(async (dir) => {
    const jobs = new JobManager({ dir });
    const job = jobs.run('vm-save', 'db', async () => {
      throw new VisorError('conflict', 'invalid-state', 'Cannot save VM "db": it is off.', { hint: 'Start it.' });
    });
    const done = await jobs.wait(job.id);
    assert.equal(done.state, 'failed');
    assert.deepEqual(done.error, { kind: 'conflict', code: 'invalid-state', message: 'Cannot save VM "db": it is off.', hint: 'Start it.' });
    const plain = await jobs.wait(jobs.run('x', 'y', async () => Promise.reject(new Error('disk full'))).id);
    assert.equal(plain.error?.kind, 'failed');
    assert.equal(plain.error?.message, 'disk full');
  }));

test('cancel aborts the signal of a running job, which ends cancelled', () =>
  withDir(async (dir) => {
    const jobs = new JobManager({ dir });
    const started = deferred();
    const job = jobs.run('vm-create', 'big', (ctx) => {
      started.resolve();
      return new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)));
    });
    await started.promise;
    assert.equal(jobs.get(job.id).state, 'running');
    jobs.cancel(job.id);
    const done = await jobs.wait(job.id);
    assert.equal(done.state, 'cancelled');
    assert.equal(done.error?.kind, 'cancelled');
    assert.throws(() => jobs.cancel(job.id), (e: unknown) => e instanceof VisorError && e.kind === 'conflict');
    assert.throws(() => jobs.cancel('nope'), (e: unknown) => e instanceof VisorError && e.kind === 'not-found');
  }));

test('jobs beyond maxRunning wait queued, and a queued job cancels at once', () =>
  withDir(async (dir) => {
    const jobs = new JobManager({ dir, maxRunning: 1 });
    const gate = deferred();
    const first = jobs.run('a', 't', () => gate.promise);
    const second = jobs.run('b', 't', async () => 'ran');
    const third = jobs.run('c', 't', async () => 'ran');
    await new Promise((r) => setImmediate(r));
    assert.equal(jobs.get(first.id).state, 'running');
    assert.equal(jobs.get(second.id).state, 'queued');
    assert.equal(jobs.cancel(third.id).state, 'cancelled');
    gate.resolve();
    assert.equal((await jobs.wait(second.id)).result, 'ran');
    assert.equal((await jobs.wait(third.id)).state, 'cancelled');
  }));

test('records left running by a dead daemon are reported failed on recovery and removed', () =>
  withDir(async (dir) => {
    await mkdir(dir, { recursive: true });
    const stale: Job = {
      id: '11111111-2222-4333-8444-555555555555',
      kind: 'vm-start',
      target: 'web1',
      state: 'running',
      progress: 0.3,
      message: 'Booting',
      error: null,
      result: null,
      createdAt: '2026-01-01T00:00:00.000Z',
      startedAt: '2026-01-01T00:00:00.000Z',
      finishedAt: null,
    };
    await writeFile(join(dir, `${stale.id}.json`), JSON.stringify(stale));
    await writeFile(join(dir, 'garbage.json'), '{not json');
    const jobs = new JobManager({ dir, now: () => new Date('2026-01-01T00:00:10.000Z') });
    const recovered = await jobs.recover();
    assert.equal(recovered.length, 1);
    const job = jobs.get(stale.id);
    assert.equal(job.state, 'failed');
    assert.equal(job.error?.code, 'daemon-stopped');
    assert.match(job.error?.message ?? '', new RegExp(DAEMON_STOPPED_REASON));
    assert.equal(job.finishedAt, '2026-01-01T00:00:10.000Z');
    assert.deepEqual(await readdir(dir), ['garbage.json']);
    assert.equal((await jobs.wait(stale.id)).state, 'failed');
  }));

test('finished jobs are kept in memory within bounds', () =>
  withDir(async (dir) => {
    let clock = Date.parse('2026-01-01T00:00:00.000Z');
    const jobs = new JobManager({ dir, maxFinished: 3, finishedTtlMs: 1000, now: () => new Date(clock) });
    const ids: string[] = [];
    for (let i = 0; i < 5; i += 1) {
      const job = jobs.run('n', String(i), async () => i);
      ids.push(job.id);
      await jobs.wait(job.id);
    }
    assert.deepEqual(jobs.list().map((j) => j.target), ['4', '3', '2']);
    clock += 2000;
    assert.deepEqual(jobs.list(), []);
    assert.throws(() => jobs.get(ids[4]!), /No job/);
  }));

test('a job cancelled while its record is written never starts its work', () =>
  withDir(async (dir) => {
    const jobs = new JobManager({ dir });
    let started = false;
    const job = jobs.run('a', 't', async () => {
      started = true;
    });
    await new Promise((r) => queueMicrotask(() => r(undefined)));
    assert.equal(jobs.get(job.id).state, 'running');
    jobs.cancel(job.id);
    assert.equal((await jobs.wait(job.id)).state, 'cancelled');
    assert.equal(started, false);
  }));
