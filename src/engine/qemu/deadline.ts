import { VisorError, cancelled } from '../../core/index.js';
import { timeoutError } from './engine-errors.js';

/**
 * One wait's budget: aborts when the caller's signal aborts (reason: its VisorError reason, else
 * a `cancelled` VisorError)
 * or when `timeoutMs` passes (reason: a `timeout` VisorError naming `what`). Dispose it when the
 * wait ends so its timer and listener go away.
 */
export class Deadline implements Disposable {
  readonly signal: AbortSignal;
  readonly #controller = new AbortController();
  readonly #timer: NodeJS.Timeout;
  readonly #parent: AbortSignal | undefined;
  readonly #onParentAbort = (): void => {
    // An outer deadline's reason (its time-out) passes through; a bare abort is a cancel.
    const reason: unknown = this.#parent?.reason;
    this.#controller.abort(reason instanceof VisorError ? reason : cancelled(this.what));
  };

  constructor(
    readonly what: string,
    readonly timeoutMs: number,
    parent?: AbortSignal,
  ) {
    this.signal = this.#controller.signal;
    this.#parent = parent;
    this.#timer = setTimeout(() => this.#controller.abort(timeoutError(what, timeoutMs)), timeoutMs);
    this.#timer.unref();
    if (parent?.aborted) this.#onParentAbort();
    else parent?.addEventListener('abort', this.#onParentAbort, { once: true });
  }

  /** Throws the abort reason if the budget is spent. */
  check(): void {
    if (this.signal.aborted) throw this.signal.reason;
  }

  dispose(): void {
    clearTimeout(this.#timer);
    this.#parent?.removeEventListener('abort', this.#onParentAbort);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Options every wait in the engine takes. */
export interface WaitOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
}

/**
 * Races `promise` against the deadline's signal. The promise keeps running if the deadline
 * fires; callers that own a resource behind it clean up in their own `finally`.
 */
export function raceSignal<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error as Error);
      },
    );
  });
}
