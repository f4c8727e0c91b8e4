import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AcceleratorChoice, KvmFacts } from './accelerator-decision.js';

/**
 * The accelerator decision, kept for one boot of the host (keyed on the kernel's boot_id) and
 * one QEMU binary: the KVM probe costs a QEMU start, and neither answer changes until a reboot
 * or a QEMU upgrade (which changes the binary's path or version text).
 */
export interface CachedAccelerator {
  bootId: string;
  qemu: string;
  facts: KvmFacts;
  choice: AcceleratorChoice;
  decidedAt: string;
}

export const BOOT_ID_PATH = '/proc/sys/kernel/random/boot_id';

export async function readBootId(path = BOOT_ID_PATH): Promise<string> {
  return (await readFile(path, 'utf8')).trim();
}

/** The cached decision when it is for this boot and QEMU; null otherwise or when unreadable. */
export async function readCachedAccelerator(file: string, key: { bootId: string; qemu: string }): Promise<CachedAccelerator | null> {
  try {
    const cached = JSON.parse(await readFile(file, 'utf8')) as Partial<CachedAccelerator>;
    if (cached.bootId !== key.bootId || cached.qemu !== key.qemu || !cached.choice || !cached.facts) return null;
    return cached as CachedAccelerator;
  } catch {
    return null;
  }
}

/** Writes the decision atomically (temp file + rename). */
export async function writeCachedAccelerator(file: string, entry: CachedAccelerator): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(entry, null, 2)}\n`, { mode: 0o644 });
  await rename(temp, file);
}
