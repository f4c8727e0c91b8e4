import { z } from 'zod';

/** What a VM is doing, in Hyper-V's words. Persistent states survive the daemon: off, saved. */
export const VmState = z.enum(['off', 'starting', 'running', 'paused', 'saving', 'saved', 'stopping']);
export type VmState = z.infer<typeof VmState>;

/** Every change to a VM's power state is one of these commands. */
export const VmAction = z.enum(['start', 'shut-down', 'turn-off', 'save', 'pause', 'resume', 'restart', 'delete']);
export type VmAction = z.infer<typeof VmAction>;

/** Where each action is legal. Transitional states accept only turn-off (and delete --force). */
export const LEGAL_FROM: Record<VmAction, readonly VmState[]> = {
  start: ['off', 'saved'],
  'shut-down': ['running'],
  'turn-off': ['running', 'paused', 'starting', 'stopping', 'saving'],
  save: ['running', 'paused'],
  pause: ['running'],
  resume: ['paused'],
  restart: ['running'],
  delete: ['off', 'saved'],
};

/** What to say instead of "illegal transition": the next step that would work. */
export const ADVICE: Partial<Record<VmState, string>> = {
  off: 'Start it with "visor vm start NAME".',
  saved: 'Start it with "visor vm start NAME" to resume from its saved state.',
  paused: 'Resume it with "visor vm resume NAME".',
  running: 'Stop it first with "visor vm stop NAME" (add --force to turn it off).',
  starting: 'Wait for it to finish starting, or turn it off with "visor vm stop NAME --force".',
  stopping: 'Wait for it to stop, or turn it off with "visor vm stop NAME --force".',
  saving: 'Wait for the save to finish.',
};

export function isActionLegal(action: VmAction, state: VmState): boolean {
  return LEGAL_FROM[action].includes(state);
}
