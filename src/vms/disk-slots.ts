import { CONTROLLER_LIMITS, VisorError, invalid } from '../core/index.js';
import type { ControllerType, VmConfig } from '../core/index.js';

/**
 * Where a new disk sits on a VM's controllers (pure). A slot left out is the first free one,
 * controller by controller; a slot given must be free. Generation 2 has no IDE.
 */
export function chooseSlot(
  config: VmConfig,
  want: { controller: ControllerType; controllerNumber?: number | undefined; location?: number | undefined },
): { controllerNumber: number; location: number } {
  const { controller } = want;
  if (controller === 'ide' && config.generation === 2) {
    throw invalid('controller', 'Generation 2 VMs have no IDE controller.', 'Use --controller scsi or virtio.');
  }
  const limits = CONTROLLER_LIMITS[controller];
  const taken = new Set<string>();
  for (const d of config.disks) if (d.controller === controller) taken.add(`${d.controllerNumber}:${d.location}`);
  if (config.dvd && config.dvd.controller === controller) taken.add(`${config.dvd.controllerNumber}:${config.dvd.location}`);
  const numbers = want.controllerNumber === undefined ? range(limits.controllers) : [want.controllerNumber];
  for (const n of numbers) {
    if (n >= limits.controllers) {
      throw invalid('controllerNumber', `${controller} controller ${n} does not exist: a VM has ${limits.controllers}.`);
    }
    if (want.location !== undefined) {
      if (want.location >= limits.locations) {
        throw invalid('location', `${controller} controllers have locations 0 to ${limits.locations - 1}: current value is ${want.location}.`);
      }
      if (!taken.has(`${n}:${want.location}`)) return { controllerNumber: n, location: want.location };
      if (want.controllerNumber !== undefined) {
        throw new VisorError('conflict', 'slot-taken', `${controller} ${n}:${want.location} already holds a disk or the DVD drive.`, {
          field: 'location',
          hint: 'Leave the location out to take the first free one.',
        });
      }
      continue;
    }
    for (const l of range(limits.locations)) if (!taken.has(`${n}:${l}`)) return { controllerNumber: n, location: l };
  }
  throw new VisorError('conflict', 'no-free-slot', `Every ${controller} slot of VM "${config.name}" is taken.`, {
    field: 'controller',
    hint: 'Use another controller type, or remove a disk.',
  });
}

/** The first of disk0, disk1, ... the VM does not use. */
export function nextDiskId(config: VmConfig): string {
  const used = new Set(config.disks.map((d) => d.id));
  for (let i = 0; ; i++) if (!used.has(`disk${i}`)) return `disk${i}`;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
