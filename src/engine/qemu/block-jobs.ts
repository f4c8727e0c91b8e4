import { VisorError } from '../../core/index.js';
import { BLOCK_ERROR_CODES } from './block-graph.js';
import type { WaitOptions } from './deadline.js';
import type { QmpClient } from './qmp-client.js';
import type { QmpEvent } from './qmp-types.js';

/**
 * One mirror job on a QMP connection (QEMU's or the storage daemon's), with its end recorded
 * from the events: jobs are auto-dismissed, so once a job has ended the events are the only
 * place its error is told.
 */
export class MirrorJob implements Disposable {
  #ended: { kind: 'completed' | 'cancelled'; error: string | null } | null = null;
  readonly #waiters = new Set<() => void>();
  #next: { promise: Promise<void>; resolve: () => void } | null = null;
  readonly #onEvent = (event: QmpEvent): void => {
    if (event.data?.device !== this.id) return; // STOP, RESUME, ... carry no data
    this.#next?.resolve();
    this.#next = null;
    if (event.event === 'BLOCK_JOB_COMPLETED' || event.event === 'BLOCK_JOB_CANCELLED') {
      const error = typeof event.data.error === 'string' ? event.data.error : null;
      this.#ended = { kind: event.event === 'BLOCK_JOB_COMPLETED' ? 'completed' : 'cancelled', error };
      for (const wake of this.#waiters) wake();
    }
  };

  constructor(
    readonly qmp: QmpClient,
    readonly id: string,
  ) {
    qmp.on('event', this.#onEvent);
  }

  get ended(): { kind: 'completed' | 'cancelled'; error: string | null } | null {
    return this.#ended;
  }

  /** Resolves at the job's next event (READY, ERROR, COMPLETED, ...): wakes a progress loop early. */
  nextEvent(): Promise<void> {
    if (!this.#next) {
      let resolve: () => void = () => undefined;
      const promise = new Promise<void>((r) => (resolve = r));
      this.#next = { promise, resolve };
    }
    return this.#next.promise;
  }

  /**
   * Starts `blockdev-mirror` from `source` to `target` (sync full: a standalone copy). `bufSize`
   * is QEMU's `buf-size` (default 16 MiB: 16 requests of 1 MiB in flight; above that each
   * request grows to buf-size / 16).
   */
  async start(
    source: string,
    target: string,
    options: WaitOptions & { copyMode?: 'background' | 'write-blocking'; speed?: number; bufSize?: number } = {},
  ): Promise<void> {
    await this.qmp.blockdevMirror(
      {
        'job-id': this.id,
        device: source,
        target,
        sync: 'full',
        'copy-mode': options.copyMode ?? 'background',
        ...(options.speed ? { speed: options.speed } : {}),
        ...(options.bufSize ? { 'buf-size': options.bufSize } : {}),
      },
      options,
    );
  }

  /** offset/len/ready from query-block-jobs; null when the job is gone. */
  async query(options?: WaitOptions): Promise<{ offset: number; len: number; ready: boolean } | null> {
    const jobs = await this.qmp.queryBlockJobs(options);
    const job = jobs.find((j) => j.device === this.id);
    return job ? { offset: job.offset, len: job.len, ready: job.ready } : null;
  }

  /** Switches a running mirror to write-blocking: guest writes then reach both sides before they complete. */
  async writeBlocking(options?: WaitOptions): Promise<void> {
    await this.qmp.execute('block-job-change', { id: this.id, type: 'mirror', 'copy-mode': 'write-blocking' }, options);
  }

  /** Resolves when the job has ended (completed or cancelled), with how. */
  async waitEnded(options: WaitOptions): Promise<{ kind: 'completed' | 'cancelled'; error: string | null }> {
    if (this.#ended) return this.#ended;
    const signal = options.signal;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => finish(new VisorError('failed', 'timeout', `Block job "${this.id}" did not end within ${options.timeoutMs ?? 60_000} ms.`)), options.timeoutMs ?? 60_000);
      const onClose = (): void => finish(new VisorError('failed', 'qmp-disconnected', `The QMP connection closed while block job "${this.id}" ran.`));
      const onAbort = (): void => finish(signal?.reason as Error);
      const wake = (): void => finish(null);
      const finish = (error: Error | null): void => {
        clearTimeout(timer);
        this.#waiters.delete(wake);
        this.qmp.off('close', onClose);
        signal?.removeEventListener('abort', onAbort);
        if (error) reject(error);
        else if (this.#ended) resolve(this.#ended);
      };
      this.#waiters.add(wake);
      this.qmp.once('close', onClose);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (signal?.aborted) onAbort();
    });
  }

  /** Pivots a ready mirror to its target and waits for BLOCK_JOB_COMPLETED. */
  async complete(options: WaitOptions): Promise<void> {
    await this.qmp.jobComplete(this.id, options);
    const end = await this.waitEnded(options);
    if (end.kind !== 'completed' || end.error !== null) {
      throw new VisorError('failed', BLOCK_ERROR_CODES.moveFailed, `The mirror "${this.id}" did not pivot: ${end.error ?? end.kind}.`);
    }
  }

  /**
   * Cancels the job (before or after ready: no pivot either way) and waits until it has ended.
   * A job already gone is fine.
   */
  async cancel(options: WaitOptions): Promise<void> {
    if (this.#ended) return;
    try {
      await this.qmp.blockJobCancel(this.id, options);
    } catch (error) {
      if (await this.query(options).then((j) => j === null, () => true)) return;
      throw error;
    }
    await this.waitEnded(options);
  }

  dispose(): void {
    this.qmp.off('event', this.#onEvent);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * The mirror's buffer when its target is O_DIRECT: 16 requests of 8 MiB. ext4 serializes
 * O_DIRECT writes into a file's holes (a fresh target is all holes) on its inode lock, so the
 * copy runs at one write at a time; larger writes mean fewer round trips. Held by QEMU (or the
 * storage daemon) only while the mirror runs.
 */
export const DIRECT_COPY_BUF_SIZE = 128 * 1024 * 1024;

/**
 * Adds a move target's protocol node for the copy: a local file or block device is opened with
 * O_DIRECT (`cache.direct`). A buffered target costs the host a second copy of every byte into
 * the page cache, 16 mirror writers contending on the file's lock (ext4's i_rwsem), and a flush of
 * the whole disk before the mirror is READY, all of it CPU and I/O taken from the running guest.
 * Where O_DIRECT is refused (tmpfs, some network file systems) the node is added as given.
 * Answers whether O_DIRECT is on: then `restoreTargetCache` after the pivot.
 */
export async function addCopyTarget(qmp: QmpClient, protocol: Record<string, unknown>, wait?: WaitOptions): Promise<boolean> {
  if ((protocol.driver === 'file' || protocol.driver === 'host_device') && protocol.cache === undefined) {
    try {
      await qmp.blockdevAdd({ ...protocol, cache: { direct: true } }, wait);
      return true;
    } catch (error) {
      if (wait?.signal?.aborted) throw error;
    }
  }
  await qmp.blockdevAdd(protocol, wait);
  return false;
}

/**
 * Reopens a pivoted target's protocol node with the options it was added with (`protocol`, no
 * cache option): the disk then runs with the page cache as it does after a launch.
 */
export async function restoreTargetCache(qmp: QmpClient, protocol: Record<string, unknown>, wait?: WaitOptions): Promise<void> {
  await qmp.execute('blockdev-reopen', { options: [protocol] }, wait);
}
