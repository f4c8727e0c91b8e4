import { resolve } from 'node:path';
import { parseSize } from '../../api/index.js';
import { followJob } from '../follow-job.js';
import type { DiskAttachment, DiskFormat, VmDiskAddInput, VmView } from '../../core/index.js';
import { withClient } from '../connect.js';
import { EXIT } from '../exit-codes.js';
import { printJson, printTable, usageError } from '../output.js';

interface JsonOption {
  json?: boolean;
}

interface AddOptions extends JsonOption {
  path?: string;
  size?: string;
  format?: DiskFormat;
  controller?: 'ide' | 'scsi' | 'virtio';
  controllerNumber?: string;
  location?: string;
  passthrough?: boolean;
  readOnly?: boolean;
}

export async function add(name: string, options: AddOptions): Promise<number> {
  if ((options.path === undefined) === (options.size === undefined)) {
    throw usageError('Give either --path (an existing disk or device) or --size (a new disk).', 'For example: visor vm disk add web1 --size 1G');
  }
  const spec: VmDiskAddInput = {
    ...(options.path !== undefined ? { path: resolve(options.path) } : {}),
    ...(options.size !== undefined ? { new: { size: parseSize(options.size, '--size'), ...(options.format ? { format: options.format } : {}) } } : {}),
    ...(options.controller ? { controller: options.controller } : {}),
    ...(options.controllerNumber !== undefined ? { controllerNumber: whole(options.controllerNumber, '--controller-number') } : {}),
    ...(options.location !== undefined ? { location: whole(options.location, '--location') } : {}),
    ...(options.passthrough ? { passthrough: true } : {}),
    ...(options.readOnly ? { readOnly: true } : {}),
  };
  const before = await withClient((c) => c.listVmDisks(name));
  const vm = await withClient((c) => c.addVmDisk(name, spec));
  const added = vm.config.disks.find((d) => !before.some((b) => b.id === d.id));
  if (options.json) printJson(added ?? vm.config.disks.at(-1));
  else if (added) process.stdout.write(`Attached ${added.id} to VM "${vm.config.name}" at ${slot(added)}: ${added.path}\n`);
  return EXIT.ok;
}

export async function remove(name: string, diskId: string, options: JsonOption): Promise<number> {
  const vm = await withClient((c) => c.removeVmDisk(name, diskId));
  if (options.json) printJson(vm.config.disks);
  else process.stdout.write(`Removed ${diskId} from VM "${vm.config.name}" (the file is kept).\n`);
  return EXIT.ok;
}

export async function list(name: string, options: JsonOption): Promise<number> {
  const disks = await withClient((c) => c.listVmDisks(name));
  if (options.json) {
    printJson(disks);
    return EXIT.ok;
  }
  if (disks.length === 0) {
    process.stdout.write(`VM "${name}" has no disks. Add one with "visor vm disk add ${name} --size 1G".\n`);
    return EXIT.ok;
  }
  printTable(
    ['ID', 'CONTROLLER', 'SLOT', 'FORMAT', 'PATH'],
    disks.map((d) => [d.id, d.controller, `${d.controllerNumber}:${d.location}`, `${d.format}${d.readOnly ? ' (ro)' : ''}`, d.path]),
  );
  return EXIT.ok;
}

export async function dvdSet(name: string, iso: string, options: JsonOption): Promise<number> {
  return dvd(name, resolve(iso), options);
}

export async function dvdEject(name: string, options: JsonOption): Promise<number> {
  return dvd(name, null, options);
}

async function dvd(name: string, iso: string | null, options: JsonOption): Promise<number> {
  const vm: VmView = await withClient((c) => c.setVmDvd(name, iso));
  if (options.json) printJson(vm.config.dvd);
  else process.stdout.write(iso ? `Inserted ${iso} in VM "${vm.config.name}".\n` : `Ejected the DVD of VM "${vm.config.name}".\n`);
  return EXIT.ok;
}

function slot(d: DiskAttachment): string {
  return `${d.controller} ${d.controllerNumber}:${d.location}`;
}

function whole(text: string, option: string): number {
  if (!/^\d+$/.test(text.trim())) throw usageError(`${option} must be a whole number: current value is "${text}".`);
  return Number(text);
}

export async function moveStorage(name: string, options: JsonOption & { to?: string; disksOnly?: boolean; format?: DiskFormat }): Promise<number> {
  if (options.to === undefined) throw usageError('Give the destination folder with --to.', 'For example: visor vm move-storage web1 --to /srv/vms/web1 --disks-only');
  const destination = resolve(options.to);
  const vm = await withClient(async (c) =>
    followJob<VmView>(c, c.moveVmStorage(name, { destination, disksOnly: options.disksOnly ?? false, ...(options.format ? { format: options.format } : {}) }), {
      quiet: options.json,
    }),
  );
  if (options.json) printJson(vm);
  else process.stdout.write(`Moved the storage of VM "${vm.config.name}" to ${destination}; it is ${vm.state}.\n`);
  return EXIT.ok;
}
