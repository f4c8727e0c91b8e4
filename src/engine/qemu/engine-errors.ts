import { VisorError } from '../../core/index.js';

/**
 * The engine's sentinel errors, one stable code each. Callers test `error.code`, never the
 * message. Whose fault: QEMU refusing or vanishing is 'failed'; a missing binary or firmware is
 * 'unavailable'; a time-out is 'failed' with code `timeout`.
 */
export const ENGINE_ERROR_CODES = {
  timeout: 'timeout',
  qmpDisconnected: 'qmp-disconnected',
  qmpCommandFailed: 'qmp-command-failed',
  qmpProtocol: 'qmp-protocol-error',
  qemuStartFailed: 'qemu-start-failed',
  qemuNotFound: 'qemu-not-found',
  qemuTooOld: 'qemu-too-old',
  firmwareMissing: 'firmware-missing',
  agentUnavailable: 'guest-agent-unavailable',
  agentCommandFailed: 'guest-agent-command-failed',
  saveFailed: 'save-state-failed',
  restoreFailed: 'restore-state-failed',
  vmUnresponsive: 'vm-unresponsive',
  alreadyRunning: 'vm-already-running',
  pathTooLong: 'socket-path-too-long',
} as const;

export function timeoutError(what: string, timeoutMs: number): VisorError {
  return new VisorError('failed', ENGINE_ERROR_CODES.timeout, `${what} did not finish within ${timeoutMs} ms.`, {
    details: { timeoutMs },
  });
}

export function qmpDisconnected(detail: string, cause?: unknown): VisorError {
  return new VisorError('failed', ENGINE_ERROR_CODES.qmpDisconnected, `The QMP connection closed: ${detail}.`, {
    cause,
    hint: 'QEMU has probably exited; see the VM\'s qemu.log.',
  });
}

/** QEMU answered a command with {"error": {"class", "desc"}}. */
export function qmpCommandFailed(command: string, errorClass: string, desc: string): VisorError {
  return new VisorError('failed', ENGINE_ERROR_CODES.qmpCommandFailed, `QEMU refused "${command}": ${desc}`, {
    details: { command, errorClass },
  });
}

export function isEngineError(error: unknown, code: string): error is VisorError {
  return error instanceof VisorError && error.code === code;
}
