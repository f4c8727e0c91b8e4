import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cancelled } from '../core/index.js';
import type { Accelerator } from '../engine/qemu/index.js';
import type { KvmProbeResult } from './accelerator-decision.js';

/**
 * The probe guest: a 64 KiB BIOS image whose reset vector goes real mode → protected mode →
 * long mode with paging (what any x86-64 kernel needs) and then writes 0x2a to an
 * isa-debug-exit port at 0xf4, which makes QEMU exit with status (0x2a << 1) | 1 = 85.
 * Assembled with GNU as from this source (`as --32`, `ld -m elf_i386 -Ttext=0 --oformat binary`):
 *
 *   .code16  cli; mov $0xf000,%ax; mov %ax,%ds; lgdtl (gdt_desc); cr0 |= PE; ljmpl $0x08,$pm32+0xf0000
 *   .code32  load 0x18 into ds/es/ss; PML4@0x1000 → PDPT@0x2000 → PD@0x3000 (one 2 MiB page);
 *            cr4 |= PAE; cr3 = 0x1000; EFER(0xc0000080) |= LME; cr0 |= PG; ljmp $0x10,$lm64+0xf0000
 *   .code64  mov $0x2a,%al; out %al,$0xf4; 1: hlt; jmp 1b
 *   gdt: null, 0x00cf9a000000ffff (code32), 0x00af9a000000ffff (code64), 0x00cf92000000ffff (data)
 *   .org 0xfff0: jmp _start
 *
 * Under this machine's PVM flavour of /dev/kvm the real-mode part runs but long mode is never
 * reached (QEMU 10.0.2): a real-mode-only probe would wrongly pass.
 */
const PROBE_CODE_HEX =
  'fab800f08ed8660f0116c0000f20c06683c8010f22c066ea1e000f00080066b818008ed88ec08ed0c705001000000320' +
  '0000c7050410000000000000c7050020000003300000c7050420000000000000c7050030000083000000c70504300000' +
  '000000000f20e083c8200f22e0b8001000000f22d8b9800000c00f320d000100000f300f20c00d000000800f22c0ea95' +
  '000f001000b02ae6f4f4ebfd8db400000000000000000000ffff0000009acf00ffff0000009aaf00ffff00000092cf00' +
  '1f00a0000f00';
/** `jmp _start` (e9 rel16) at the reset vector, offset 0xfff0 of the image. */
const RESET_VECTOR_HEX = 'e90d00';
const RESET_VECTOR_OFFSET = 0xfff0;
/** QEMU's pc machine wants a BIOS image of a multiple of 64 KiB. */
const BIOS_IMAGE_BYTES = 64 * 1024;
const HLT = 0xf4;
/** isa-debug-exit: QEMU exits with (value << 1) | 1. */
export const PROBE_EXIT_STATUS = (0x2a << 1) | 1;

export function kvmProbeFirmware(): Buffer {
  const image = Buffer.alloc(BIOS_IMAGE_BYTES, HLT);
  Buffer.from(PROBE_CODE_HEX, 'hex').copy(image, 0);
  Buffer.from(RESET_VECTOR_HEX, 'hex').copy(image, RESET_VECTOR_OFFSET);
  return image;
}

export interface KvmProbeOptions {
  qemuBinary: string;
  /** 'kvm' for the real probe; 'tcg' checks the probe itself. */
  accelerator?: Accelerator;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Runs the probe guest (a child we wait for, not a daemon) and says whether it got there. */
export async function runKvmProbe(options: KvmProbeOptions): Promise<KvmProbeResult> {
  const timeoutMs = options.timeoutMs ?? 3_000;
  const dir = await mkdtemp(join(tmpdir(), 'visor-kvm-probe-'));
  try {
    const bios = join(dir, 'probe.bin');
    await writeFile(bios, kvmProbeFirmware());
    const args = [
      '-nodefaults', '-no-user-config', '-display', 'none', '-machine', 'pc',
      '-accel', options.accelerator ?? 'kvm', '-bios', bios, '-m', '16',
      '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04',
    ];
    const started = performance.now();
    const child = spawn(options.qemuBinary, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL', signal: options.signal });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < 4096) stderr += chunk.toString();
    });
    const outcome = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
      child.once('error', (error) => resolve({ code: null, signal: null, error }));
      child.once('close', (code, signal) => resolve({ code, signal }));
    });
    if (options.signal?.aborted) throw cancelled('The KVM probe');
    const ms = Math.round(performance.now() - started);
    if (outcome.code === PROBE_EXIT_STATUS) return { ok: true, detail: `reached long mode in ${ms} ms` };
    if (outcome.error) return { ok: false, detail: outcome.error.message };
    if (outcome.signal === 'SIGKILL') return { ok: false, detail: `did not reach long mode within ${timeoutMs} ms` };
    const lastLine = stderr.trim().split('\n').at(-1) ?? '';
    return { ok: false, detail: `QEMU exited with ${outcome.code ?? outcome.signal}${lastLine ? `: ${lastLine}` : ''}` };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
