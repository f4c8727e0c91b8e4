import { EventEmitter } from 'node:events';
import {
  VisorError,
  asVisorError,
  newId,
  serializeError,
  type OperationContext,
} from '../core/index.js';
import { isFinished, type Job, type JobState } from './job.js';
import { JobRecords } from './job-records.js';

export interface JobEvents {
  /** Progress or message changed (throttled to steps of 1%, and every message change). */
  'job-progress': [Job];
  /** The job entered a new state. */
  'job-state': [Job];
}

export interface JobManagerOptions {
  /** `$VISOR_HOME/jobs`: where running jobs are recorded. */
  dir: string;
  /** Jobs running at once; more wait as `queued`. */
  maxRunning?: number;
  /** Finished jobs kept in memory, newest first. */
  maxFinished?: number;
  /** How long a finished job is kept in memory. */
  finishedTtlMs?: number;
  now?: () => Date;
}

export type JobWork<T> = (ctx: OperationContext) => Promise<T>;

/** Why a job left running by a dead daemon failed. */
export const DAEMON_STOPPED_REASON = 'the daemon stopped during the job';

const PROGRESS_STEP = 0.01;

interface Entry {
  job: Job;
  controller: AbortController;
  work: JobWork<unknown> | null;
  done: Promise<Job>;
  settle: (job: Job) => void;
}

/**
 * Runs long operations as jobs: progress, cancel through an AbortSignal, events, and a record on
 * disk while a job runs so that a daemon that dies mid-job leaves a trace the next one reports.
 * The operations themselves do their own recovery; the manager only says what happened.
 */
export class JobManager {
  readonly events = new EventEmitter<JobEvents>();
  private readonly entries = new Map<string, Entry>();
  private readonly queue: Entry[] = [];
  private readonly records: JobRecords;
  private readonly maxRunning: number;
  private readonly maxFinished: number;
  private readonly finishedTtlMs: number;
  private readonly now: () => Date;
  private running = 0;
  private readonly pendingWrites = new Set<Promise<unknown>>();

  constructor(options: JobManagerOptions) {
    this.records = new JobRecords(options.dir);
    this.maxRunning = options.maxRunning ?? 16;
    this.maxFinished = options.maxFinished ?? 200;
    this.finishedTtlMs = options.finishedTtlMs ?? 60 * 60 * 1000;
    this.now = options.now ?? (() => new Date());
  }

  /**
   * Marks jobs a dead daemon left running as failed, keeps them in memory for people to see,
   * and removes their records. Call once before running anything.
   */
  async recover(): Promise<Job[]> {
    const recovered: Job[] = [];
    for (const record of await this.records.readAll()) {
      const job: Job = isFinished(record.state)
        ? record
        : {
            ...record,
            state: 'failed',
            finishedAt: this.now().toISOString(),
            error: serializeError(
              new VisorError('failed', 'daemon-stopped', `Job ${record.kind} on "${record.target}" failed: ${DAEMON_STOPPED_REASON}.`, {
                hint: 'Check the target\'s state and run the operation again if needed.',
              }),
            ),
          };
      if (!this.entries.has(job.id)) {
        const entry = this.entry(job);
        entry.settle(job);
        this.entries.set(job.id, entry);
        recovered.push(snapshot(job));
      }
      await this.records.remove(record.id);
    }
    this.prune();
    return recovered;
  }

  /** Starts `work` as a job and answers at once with its snapshot (state `queued`). */
  run<T>(kind: string, target: string, work: JobWork<T>): Job<T> {
    const job: Job = {
      id: newId(),
      kind,
      target,
      state: 'queued',
      progress: 0,
      message: null,
      error: null,
      result: null,
      createdAt: this.now().toISOString(),
      startedAt: null,
      finishedAt: null,
    };
    const entry = this.entry(job);
    entry.work = work as JobWork<unknown>;
    this.entries.set(job.id, entry);
    this.queue.push(entry);
    this.events.emit('job-state', snapshot(job));
    queueMicrotask(() => this.pump());
    return snapshot(job) as Job<T>;
  }

  get(id: string): Job {
    const entry = this.entries.get(id);
    if (!entry) throw notFoundJob(id);
    return snapshot(entry.job);
  }

  /** Newest first. */
  list(): Job[] {
    this.prune();
    return [...this.entries.values()].map((e) => snapshot(e.job)).reverse();
  }

  /** Resolves with the finished job (whatever its outcome). */
  wait(id: string): Promise<Job> {
    const entry = this.entries.get(id);
    if (!entry) return Promise.reject(notFoundJob(id));
    return entry.done;
  }

  /**
   * Cancels a job: a queued one at once, a running one by aborting its signal (it ends as
   * `cancelled` when the work gives up). A finished job cannot be cancelled.
   */
  cancel(id: string): Job {
    const entry = this.entries.get(id);
    if (!entry) throw notFoundJob(id);
    const { job } = entry;
    if (isFinished(job.state)) {
      throw new VisorError('conflict', 'job-finished', `Cannot cancel job ${id}: it already ${job.state}.`, {
        details: { state: job.state },
      });
    }
    if (job.state === 'queued') {
      const index = this.queue.indexOf(entry);
      if (index >= 0) this.queue.splice(index, 1);
      entry.controller.abort(cancelledError(job));
      this.finish(entry, 'cancelled', { error: cancelledError(job) });
    } else {
      entry.controller.abort(cancelledError(job));
    }
    return snapshot(entry.job);
  }

  /** Waits for record writes in flight; running work is left alone (its record stays). */
  async close(): Promise<void> {
    await Promise.allSettled([...this.pendingWrites]);
  }

  private entry(job: Job): Entry {
    let settle: (job: Job) => void = () => undefined;
    const done = new Promise<Job>((resolve) => {
      settle = resolve;
    });
    return { job, controller: new AbortController(), work: null, done, settle };
  }

  private pump(): void {
    while (this.running < this.maxRunning && this.queue.length > 0) {
      const entry = this.queue.shift()!;
      this.running += 1;
      void this.execute(entry).finally(() => {
        this.running -= 1;
        this.pump();
      });
    }
  }

  private async execute(entry: Entry): Promise<void> {
    const { job, controller } = entry;
    job.state = 'running';
    job.startedAt = this.now().toISOString();
    try {
      await this.track(this.records.write(job));
    } catch (error) {
      this.finish(entry, 'failed', {
        error: new VisorError('failed', 'job-record-failed', `Could not record job ${job.id}: ${asVisorError(error).message}`, {
          cause: error,
        }),
      });
      return;
    }
    if (controller.signal.aborted) {
      // Cancelled while its record was being written: the work never starts.
      this.finish(entry, 'cancelled', { error: cancelledError(job) });
      return;
    }
    this.events.emit('job-state', snapshot(job));
    const ctx: OperationContext = {
      signal: controller.signal,
      progress: (fraction, message) => this.progress(entry, fraction, message),
    };
    try {
      const result = await entry.work!(ctx);
      this.finish(entry, 'succeeded', { result });
    } catch (error) {
      if (controller.signal.aborted) this.finish(entry, 'cancelled', { error: cancelledError(job) });
      else this.finish(entry, 'failed', { error: asVisorError(error) });
    }
  }

  private progress(entry: Entry, fraction: number, message?: string): void {
    const { job } = entry;
    if (isFinished(job.state)) return;
    const value = Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : job.progress;
    const nextMessage = message ?? job.message;
    const moved = Math.abs(value - job.progress) >= PROGRESS_STEP || (value === 1 && job.progress !== 1);
    const said = nextMessage !== job.message;
    job.progress = value;
    job.message = nextMessage;
    if (moved || said) this.events.emit('job-progress', snapshot(job));
  }

  private finish(entry: Entry, state: JobState, outcome: { result?: unknown; error?: VisorError }): void {
    const { job } = entry;
    if (isFinished(job.state)) return;
    job.state = state;
    job.finishedAt = this.now().toISOString();
    if (state === 'succeeded') {
      job.progress = 1;
      job.result = outcome.result ?? null;
    }
    if (outcome.error) job.error = serializeError(outcome.error);
    entry.work = null;
    void this.track(this.records.remove(job.id)).catch(() => undefined);
    this.events.emit('job-state', snapshot(job));
    entry.settle(snapshot(job));
    this.prune();
  }

  private prune(): void {
    const cutoff = this.now().getTime() - this.finishedTtlMs;
    const finished = [...this.entries.values()].filter((e) => isFinished(e.job.state));
    let excess = finished.length - this.maxFinished;
    for (const entry of finished) {
      const old = Date.parse(entry.job.finishedAt ?? entry.job.createdAt) < cutoff;
      if (old || excess > 0) {
        this.entries.delete(entry.job.id);
        excess -= 1;
      }
    }
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.pendingWrites.add(promise);
    void promise.finally(() => this.pendingWrites.delete(promise)).catch(() => undefined);
    return promise;
  }
}

function snapshot(job: Job): Job {
  return { ...job, error: job.error ? { ...job.error } : null };
}

function notFoundJob(id: string): VisorError {
  return new VisorError('not-found', 'job-not-found', `No job with id "${id}" exists.`, {
    hint: 'List jobs with "visor job list"; finished jobs are forgotten after an hour.',
  });
}

function cancelledError(job: Job): VisorError {
  return new VisorError('cancelled', 'cancelled', `Job ${job.kind} on "${job.target}" was cancelled.`);
}
