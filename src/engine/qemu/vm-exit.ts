import type { QmpEvent } from './qmp-types.js';

/** Why a VM's QEMU ended. */
export type VmExitKind = 'guest-shutdown' | 'host-quit' | 'host-signal' | 'guest-reset' | 'crashed' | 'unknown';

export interface VmExit {
  kind: VmExitKind;
  /** A sentence for people: "The guest powered off." */
  reason: string;
  /** SHUTDOWN's `reason` field when QEMU sent one. */
  shutdownReason: string | null;
}

/**
 * Names an exit from the last SHUTDOWN event (qapi ShutdownCause) and, when there was none, the
 * last error line of qemu.log. Pure.
 */
export function describeExit(shutdown: QmpEvent | null, logLine: string | null): VmExit {
  if (!shutdown) {
    const detail = logLine ? `: ${logLine}` : ' without saying why';
    return { kind: 'crashed', reason: `QEMU exited unexpectedly${detail}.`, shutdownReason: null };
  }
  const cause = typeof shutdown.data['reason'] === 'string' ? shutdown.data['reason'] : null;
  const guest = shutdown.data['guest'] === true;
  switch (cause) {
    case 'guest-shutdown':
      return { kind: 'guest-shutdown', reason: 'The guest powered off.', shutdownReason: cause };
    case 'guest-reset':
      return { kind: 'guest-reset', reason: 'The guest reset with rebooting disabled.', shutdownReason: cause };
    case 'guest-panic':
      return { kind: 'crashed', reason: 'The guest panicked.', shutdownReason: cause };
    case 'host-qmp-quit':
      return { kind: 'host-quit', reason: 'QEMU was told to quit.', shutdownReason: cause };
    case 'host-signal':
      return { kind: 'host-signal', reason: `QEMU was stopped by a signal${logLine ? ` (${logLine})` : ''}.`, shutdownReason: cause };
    case 'host-ui':
      return { kind: 'host-quit', reason: 'QEMU was closed from its user interface.', shutdownReason: cause };
    default:
      return {
        kind: guest ? 'guest-shutdown' : 'unknown',
        reason: `QEMU shut down (${cause ?? 'no reason given'}).`,
        shutdownReason: cause,
      };
  }
}
