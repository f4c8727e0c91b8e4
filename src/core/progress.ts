/**
 * What a long operation receives: a signal to honour and a way to report progress. Jobs (jobs/)
 * build one; features take one, so they never depend on jobs/.
 */
export interface OperationContext {
  readonly signal: AbortSignal;
  /** `fraction` in [0, 1]; `message` says what is happening now ("Copying disk"). */
  progress(fraction: number, message?: string): void;
}

export function quietContext(signal: AbortSignal = new AbortController().signal): OperationContext {
  return { signal, progress: () => undefined };
}
