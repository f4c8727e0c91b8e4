import type { SerializedError } from '../core/index.js';

export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

/** States a job never leaves. */
export const FINISHED_STATES: readonly JobState[] = ['succeeded', 'failed', 'cancelled'];

/**
 * A long operation as callers see it. `kind` names the operation ("vm-start"), `target` what it
 * works on (a VM's name). Snapshots are plain data: safe to serialize and to hand out.
 */
export interface Job<T = unknown> {
  id: string;
  kind: string;
  target: string;
  state: JobState;
  /** In [0, 1]. */
  progress: number;
  /** What the job is doing now ("Copying disk"), or null. */
  message: string | null;
  error: SerializedError | null;
  result: T | null;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export function isFinished(state: JobState): boolean {
  return FINISHED_STATES.includes(state);
}
