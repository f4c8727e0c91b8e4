import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { delimiter, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { VisorError } from '../../core/index.js';
import { ENGINE_ERROR_CODES } from './engine-errors.js';
import { OVMF_DIR } from './firmware.js';

const run = promisify(execFile);

/** The oldest QEMU we drive: `migrate` to `file:` and -blockdev everywhere need it. */
export const MIN_QEMU_VERSION = { major: 8, minor: 2 } as const;

export interface QemuVersion {
  major: number;
  minor: number;
  micro: number;
}

export interface QemuCapabilities {
  qemuBinary: string;
  storageDaemonBinary: string;
  version: QemuVersion;
  /** `qemu-system-x86_64 --version`'s first line. */
  versionText: string;
  firmware: {
    ovmfCode: boolean;
    ovmfVars: boolean;
    ovmfCodeSecureBoot: boolean;
    ovmfVarsSecureBoot: boolean;
  };
}

/** "QEMU emulator version 10.0.2 (Debian ...)" → {10, 0, 2}; null when unrecognised. */
export function parseQemuVersion(text: string): QemuVersion | null {
  const match = /version (\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  if (!match) return null;
  return { major: Number(match[1]), minor: Number(match[2]), micro: Number(match[3] ?? 0) };
}

export function isSupportedVersion(version: QemuVersion): boolean {
  return version.major > MIN_QEMU_VERSION.major || (version.major === MIN_QEMU_VERSION.major && version.minor >= MIN_QEMU_VERSION.minor);
}

export interface ProbeOptions {
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
}

/**
 * Finds QEMU and checks it: `VISOR_QEMU` names the system emulator (benchmarks point it at
 * another build); the storage daemon is looked up beside it, then on PATH
 * (`VISOR_QEMU_STORAGE_DAEMON` overrides). Refuses QEMU older than 8.2.
 */
export async function probeQemu(options: ProbeOptions = {}): Promise<QemuCapabilities> {
  const env = options.env ?? process.env;
  const qemuBinary = env['VISOR_QEMU'] ?? (await findOnPath('qemu-system-x86_64', env));
  if (!qemuBinary) {
    throw new VisorError('unavailable', ENGINE_ERROR_CODES.qemuNotFound, 'qemu-system-x86_64 is not installed.', {
      hint: 'Install QEMU 8.2 or later (Debian 12: bookworm-backports qemu-system-x86), or set VISOR_QEMU.',
    });
  }
  const sibling = join(dirname(qemuBinary), 'qemu-storage-daemon');
  const storageDaemonBinary =
    env['VISOR_QEMU_STORAGE_DAEMON'] ??
    ((await isExecutable(sibling)) ? sibling : await findOnPath('qemu-storage-daemon', env));
  if (!storageDaemonBinary) {
    throw new VisorError('unavailable', ENGINE_ERROR_CODES.qemuNotFound, 'qemu-storage-daemon is not installed.', {
      hint: 'It comes with QEMU (Debian: qemu-system-x86 or qemu-utils); VHDX and VHD disks need it.',
    });
  }
  let stdout: string;
  try {
    ({ stdout } = await run(qemuBinary, ['--version'], { signal: options.signal, timeout: 10_000 }));
  } catch (error) {
    throw new VisorError('unavailable', ENGINE_ERROR_CODES.qemuNotFound, `Cannot run "${qemuBinary} --version".`, { cause: error });
  }
  const versionText = stdout.split('\n')[0] ?? '';
  const version = parseQemuVersion(versionText);
  if (!version) {
    throw new VisorError('unavailable', ENGINE_ERROR_CODES.qemuNotFound, `Cannot read QEMU's version from "${versionText}".`);
  }
  if (!isSupportedVersion(version)) {
    throw new VisorError(
      'unavailable',
      ENGINE_ERROR_CODES.qemuTooOld,
      `QEMU ${version.major}.${version.minor}.${version.micro} is too old: Visor needs ${MIN_QEMU_VERSION.major}.${MIN_QEMU_VERSION.minor} or later.`,
      { hint: 'On Debian 12, install qemu-system-x86 from bookworm-backports.', details: { version } },
    );
  }
  return {
    qemuBinary,
    storageDaemonBinary,
    version,
    versionText,
    firmware: {
      ovmfCode: await isReadable(`${OVMF_DIR}/OVMF_CODE_4M.fd`),
      ovmfVars: await isReadable(`${OVMF_DIR}/OVMF_VARS_4M.fd`),
      ovmfCodeSecureBoot: await isReadable(`${OVMF_DIR}/OVMF_CODE_4M.secboot.fd`),
      ovmfVarsSecureBoot: await isReadable(`${OVMF_DIR}/OVMF_VARS_4M.ms.fd`),
    },
  };
}

let cached: { key: string; value: Promise<QemuCapabilities> } | null = null;

/** probeQemu() once per process (per VISOR_QEMU value). A failed probe is not cached. */
export function qemuCapabilities(options: ProbeOptions = {}): Promise<QemuCapabilities> {
  const key = (options.env ?? process.env)['VISOR_QEMU'] ?? '';
  if (cached?.key !== key) {
    const value = probeQemu(options);
    cached = { key, value };
    value.catch(() => {
      if (cached?.value === value) cached = null;
    });
  }
  return cached.value;
}

async function findOnPath(name: string, env: NodeJS.ProcessEnv): Promise<string | null> {
  for (const dir of (env['PATH'] ?? '/usr/bin:/bin').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (await isExecutable(candidate)) return candidate;
  }
  return null;
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

async function isReadable(path: string): Promise<boolean> {
  try {
    await access(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}
