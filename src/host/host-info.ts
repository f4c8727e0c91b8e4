import type { HostFacts } from '../core/index.js';
import { constants } from 'node:fs';
import { access, open, readFile, readdir } from 'node:fs/promises';
import { release } from 'node:os';
import { join } from 'node:path';
import { asVisorError } from '../core/index.js';
import { qemuCapabilities } from '../engine/qemu/index.js';
import type { QemuCapabilities } from '../engine/qemu/index.js';
import { readBootId, readCachedAccelerator, writeCachedAccelerator } from './accelerator-cache.js';
import { decideAccelerator, kvmBlocker } from './accelerator-decision.js';
import type { AcceleratorChoice, KvmFacts } from './accelerator-decision.js';
import { parseCpuinfo } from './cpu-info.js';
import type { CpuInfo } from './cpu-info.js';
import { runKvmProbe } from './kvm-probe.js';
import { parseMeminfo } from './mem-info.js';
import type { MemInfo } from './mem-info.js';
import { listNics } from './network-interfaces.js';
import type { NicInfo } from './network-interfaces.js';
import { CAP_NET_ADMIN, hasCapability, parseEffectiveCapabilities } from './privileges.js';
import type { Privileges } from './privileges.js';

export interface HostInfo {
  cpu: CpuInfo;
  memory: MemInfo;
  accelerator: AcceleratorChoice & { facts: KvmFacts; cached: boolean };
  /** null when QEMU is missing or too old; `qemuError` says why. */
  qemu: { binary: string; storageDaemon: string; version: string; versionText: string } | null;
  qemuError: string | null;
  nics: NicInfo[];
  privileges: Privileges;
  /** uname -r */
  kernel: string;
}

// The API's schema (core/host-facts.ts) and this interface must agree both ways.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const hostInfoMatchesApiSchema: Same<HostInfo, HostFacts> = true;
void hostInfoMatchesApiSchema;

export interface HostInfoOptions {
  /** The accelerator decision's cache file; default `${cacheDir}/accelerator.json`. */
  cacheFile?: string;
  cacheDir?: string;
  signal?: AbortSignal;
  /** Default: engine/qemu's qemuCapabilities() (VISOR_QEMU respected). */
  qemu?: QemuCapabilities;
}

/**
 * What Visor needs to know about the host. The accelerator decision runs the KVM probe guest
 * only when everything else allows KVM, and is cached per boot when a cache file is given.
 */
export async function getHostInfo(options: HostInfoOptions = {}): Promise<HostInfo> {
  const [cpu, memory, nics, privileges] = await Promise.all([
    readFile('/proc/cpuinfo', 'utf8').then(parseCpuinfo),
    readFile('/proc/meminfo', 'utf8').then(parseMeminfo),
    listNics(),
    readPrivileges(),
  ]);
  let qemu: QemuCapabilities | null = options.qemu ?? null;
  let qemuError: string | null = null;
  if (!qemu) {
    try {
      qemu = await qemuCapabilities({ signal: options.signal });
    } catch (error) {
      qemuError = asVisorError(error).message;
    }
  }
  const facts: KvmFacts = { device: await kvmDeviceAccess(), flavour: await kvmFlavour(), cpuHasVirtualization: cpu.vmx || cpu.svm };
  const accelerator = await chooseAccelerator(facts, qemu, options);
  return {
    cpu,
    memory,
    accelerator,
    qemu: qemu
      ? {
          binary: qemu.qemuBinary,
          storageDaemon: qemu.storageDaemonBinary,
          version: `${qemu.version.major}.${qemu.version.minor}.${qemu.version.micro}`,
          versionText: qemu.versionText,
        }
      : null,
    qemuError,
    nics,
    privileges,
    kernel: release(),
  };
}

async function chooseAccelerator(
  facts: KvmFacts,
  qemu: QemuCapabilities | null,
  options: HostInfoOptions,
): Promise<HostInfo['accelerator']> {
  // Without a reason to try KVM there is nothing slow to cache.
  if (kvmBlocker(facts) !== null || !qemu) {
    return { ...decideAccelerator(facts, qemu ? null : { ok: false, detail: 'QEMU is not available' }), facts, cached: false };
  }
  const file = options.cacheFile ?? (options.cacheDir ? join(options.cacheDir, 'accelerator.json') : undefined);
  const key = { bootId: await readBootId().catch(() => 'unknown'), qemu: `${qemu.qemuBinary} ${qemu.versionText}` };
  if (file) {
    const cached = await readCachedAccelerator(file, key);
    if (cached) return { ...cached.choice, facts, cached: true };
  }
  const probe = await runKvmProbe({ qemuBinary: qemu.qemuBinary, signal: options.signal });
  const choice = decideAccelerator(facts, probe);
  if (file) await writeCachedAccelerator(file, { ...key, facts, choice, decidedAt: new Date().toISOString() }).catch(() => undefined);
  return { ...choice, facts, cached: false };
}

async function kvmDeviceAccess(path = '/dev/kvm'): Promise<KvmFacts['device']> {
  try {
    await access(path, constants.F_OK);
  } catch {
    return 'missing';
  }
  try {
    const handle = await open(path, 'r+');
    await handle.close();
    return 'opens';
  } catch {
    return 'no-access';
  }
}

async function kvmFlavour(): Promise<KvmFacts['flavour']> {
  let modules: string[];
  try {
    modules = await readdir('/sys/module');
  } catch {
    return 'none';
  }
  if (modules.includes('kvm_intel')) return 'intel';
  if (modules.includes('kvm_amd')) return 'amd';
  if (modules.includes('kvm_pvm')) return 'pvm';
  return 'none';
}

async function readPrivileges(): Promise<Privileges> {
  const uid = process.getuid?.() ?? -1;
  const status = await readFile('/proc/self/status', 'utf8').catch(() => '');
  const mask = parseEffectiveCapabilities(status);
  return { uid, root: uid === 0, netAdmin: hasCapability(mask, CAP_NET_ADMIN) };
}
