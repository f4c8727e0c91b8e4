import { VisorError, invalid } from '../core/index.js';
import type { DiskFormat } from '../core/index.js';
import { inspectDisk } from '../storage/index.js';

/**
 * Checks a disk file a VM is to open as it is (attached, or a template a child reads): healthy,
 * and not a differencing VHDX/VHD, whose chain QEMU cannot open. Answers its format. `what`
 * completes "Cannot …" in the refusal, e.g. `attach "/d/a.vhdx"`.
 */
export async function checkOpenableDisk(path: string, options: { field: string; what: string }): Promise<DiskFormat> {
  const info = await inspectDisk(path);
  if (!info.health.ok) {
    throw new VisorError('conflict', 'disk-unhealthy', `Cannot ${options.what}: ${info.health.findings.join(' ')}`, { field: options.field, hint: `See "visor disk inspect ${path}".` });
  }
  if (info.type === 'differencing' && (info.format === 'vhdx' || info.format === 'vhd')) {
    throw invalid(
      options.field,
      `"${path}" is a differencing ${info.format} disk, which QEMU cannot open.`,
      `Make a standalone copy first: visor disk convert ${path} NEW.${info.format}`,
    );
  }
  return info.format;
}
