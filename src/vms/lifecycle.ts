import { ADVICE, VisorError, isActionLegal } from '../core/index.js';
import type { VmAction, VmState } from '../core/index.js';

const VERB: Record<VmAction, string> = {
  start: 'start',
  'shut-down': 'shut down',
  'turn-off': 'turn off',
  save: 'save',
  pause: 'pause',
  resume: 'resume',
  restart: 'restart',
  delete: 'delete',
};

/**
 * The lifecycle state machine's guard: every command is checked here before any effect.
 * `Cannot start VM "web1": it is running. Stop it first with "visor vm stop web1".`
 */
export function assertLegal(action: VmAction, state: VmState, name: string): void {
  if (isActionLegal(action, state)) return;
  const advice = (ADVICE[state] ?? '').replaceAll('NAME', name);
  throw new VisorError('conflict', 'invalid-state', `Cannot ${VERB[action]} VM "${name}": it is ${state}.`, {
    hint: advice || undefined,
    details: { state, action },
  });
}
