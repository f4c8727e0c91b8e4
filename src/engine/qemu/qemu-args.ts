import { MiB, invalid } from '../../core/index.js';
import type { BootDevice, DiskAttachment, DvdDrive, VmConfig } from '../../core/index.js';
import { DVD_DEVICE_ID, DVD_NODE_NAME, FIRMWARE_VARS_NODE, blockdevArg, diskNodeName, diskNodes, fileNodeName, needsStorageDaemon } from './block-nodes.js';
import type { UefiFirmware } from './firmware.js';
import { optionList, optionString, optionValue } from './qemu-option.js';
import type { RuntimeFiles } from './runtime-files.js';

export type Accelerator = 'kvm' | 'tcg';

export interface QemuArgsOptions {
  files: RuntimeFiles;
  accelerator: Accelerator;
  /** From selectFirmware(); null for generation 1. The vars image is `files.firmwareVars`. */
  firmware: UefiFirmware | null;
  /** Start with `-incoming defer -S`: the caller feeds a saved state with migrate-incoming. */
  incoming?: boolean;
  /** Default: `max` under TCG, `host` under KVM. */
  cpuModel?: string;
  /** A pinned machine type (pc-i440fx-10.0); default the alias `pc` / `q35`. */
  machineType?: string;
  /**
   * Disk paths known to be host block devices (opened with `host_device`). Default: paths
   * under /dev/ other than /dev/shm/ (disk-location.ts).
   */
  blockDevices?: ReadonlySet<string>;
}

/**
 * Generation 2 (q35) cannot hot-plug a PCI device onto its root complex: these empty PCIe root
 * ports take hot-added virtio-blk disks and SCSI controllers (hotplug.ts).
 */
export const PCIE_HOTPLUG_PORTS = 4;
export function hotplugPortId(index: number): string {
  return `hotplug${index}`;
}

/** Largest console the product offers (vm-config.ts), 32 bits per pixel, double-buffered. */
const MAX_FRAME_BYTES = 1600 * 1200 * 4;
/** VGA's video memory in MiB: a power of two holding two frames of the largest console. */
export const VGA_MEMORY_MIB = 2 ** Math.ceil(Math.log2((2 * MAX_FRAME_BYTES) / MiB));

/**
 * The full argv (without the binary) of a VM's QEMU. Pure: the same config and options always
 * give the same argv, so a saved state restores into an identical device layout.
 * Throws an `invalid` VisorError when two devices claim one controller location.
 */
export function buildQemuArgs(config: VmConfig, options: QemuArgsOptions): string[] {
  const { files } = options;
  const gen2 = config.generation === 2;
  checkLocations(config);
  const boot = bootIndexes(config);
  const args: string[] = [
    '-nodefaults',
    '-no-user-config',
    '-name',
    optionList([['guest', config.name], ['debug-threads', true]]),
    '-uuid',
    config.id,
    '-msg',
    'timestamp=on',
  ];

  args.push('-accel', options.accelerator === 'kvm' ? 'kvm' : 'tcg,thread=multi');
  const machine = options.machineType ?? (gen2 ? 'q35' : 'pc');
  if (options.firmware) {
    const fw = options.firmware;
    args.push(
      '-blockdev',
      optionList([['driver', 'file'], ['node-name', 'firmware-code'], ['filename', fw.code], ['read-only', true]]),
      '-blockdev',
      optionList([['driver', 'file'], ['node-name', FIRMWARE_VARS_NODE], ['filename', files.firmwareVars]]),
      '-machine',
      optionString(machine, [
        ['smm', fw.secureBoot ? true : undefined],
        ['pflash0', 'firmware-code'],
        ['pflash1', FIRMWARE_VARS_NODE],
      ]),
    );
    if (fw.secureBoot) args.push('-global', 'driver=cfi.pflash01,property=secure,value=on');
  } else {
    args.push('-machine', optionValue(machine));
  }
  args.push(
    '-cpu',
    options.cpuModel ?? (options.accelerator === 'kvm' ? 'host' : 'max'),
    '-smp',
    String(config.processors.count),
    '-m',
    `${Math.floor(config.memory.startup / MiB)}M`,
  );

  if (gen2) {
    for (let i = 0; i < PCIE_HOTPLUG_PORTS; i++) {
      args.push('-device', optionString('pcie-root-port', [['id', hotplugPortId(i)], ['bus', 'pcie.0'], ['chassis', i + 1]]));
    }
  }
  for (const scsi of scsiControllers(config)) args.push('-device', `virtio-scsi-pci,id=scsi${scsi}`);

  config.disks.forEach((disk, index) => {
    args.push(...diskBackend(disk, files, { blockDevices: options.blockDevices, field: `disks[${index}].path` }));
    args.push('-device', diskFrontend(disk, gen2, boot.get(bootKey('disk', disk.id))));
  });
  if (config.dvd) args.push(...dvdArgs(config.dvd, gen2, boot.get(bootKey('dvd', DVD_DEVICE_ID))));

  config.networkAdapters.forEach((nic, index) => {
    const model = nic.model === 'e1000' ? 'e1000' : 'virtio-net-pci';
    args.push('-device', optionString(model, [['id', `nic${index}`], ['mac', nic.mac], ['bootindex', boot.get(bootKey('network', nic.id))]]));
  });

  args.push(
    '-device',
    optionString('VGA', [
      ['id', 'video0'],
      ['edid', true],
      ['xres', config.display.width],
      ['yres', config.display.height],
      ['vgamem_mb', VGA_MEMORY_MIB],
    ]),
    '-vnc',
    `unix:${optionValue(files.vncSocket)}`,
    '-chardev',
    optionString('socket', [
      ['id', 'serial0'],
      ['path', files.serialSocket],
      ['server', true],
      ['wait', false],
      ['logfile', files.serialLog],
    ]),
    '-serial',
    'chardev:serial0',
    '-device',
    'virtio-serial-pci,id=vserial0',
    '-chardev',
    optionString('socket', [['id', 'qga0'], ['path', files.agentSocket], ['server', true], ['wait', false]]),
    '-device',
    'virtserialport,bus=vserial0.0,chardev=qga0,name=org.qemu.guest_agent.0',
    '-device',
    'virtio-balloon-pci,id=balloon0,free-page-reporting=on',
    '-chardev',
    optionString('socket', [['id', 'qmp'], ['path', files.qmpSocket], ['server', true], ['wait', false]]),
    '-mon',
    'chardev=qmp,mode=control',
    '-pidfile',
    files.pidFile,
    // With -D, QEMU keeps stderr (our qemu.log) after daemonizing instead of /dev/null.
    '-D',
    files.qemuLog,
    '-daemonize',
  );
  if (options.incoming) args.push('-incoming', 'defer', '-S');
  return args;
}

function diskBackend(disk: DiskAttachment, files: RuntimeFiles, options: { blockDevices?: ReadonlySet<string>; field: string }): string[] {
  const node = diskNodeName(disk.id);
  const readOnly = disk.readOnly ? true : undefined;
  if (needsStorageDaemon(disk)) {
    return [
      '-blockdev',
      optionList([
        ['driver', 'nbd'],
        ['node-name', node],
        ['server.type', 'unix'],
        ['server.path', files.storageNbdSocket],
        ['export', disk.id],
        ['read-only', readOnly],
      ]),
    ];
  }
  const nodes = diskNodes(disk, node, options);
  return ['-blockdev', optionList(blockdevArg(nodes.protocol)), '-blockdev', optionList(blockdevArg(nodes.format))];
}

type Placement = Array<readonly [string, string | number | undefined]>;

/**
 * Where an IDE or SCSI device sits. Generation 1 (pc): the PIIX IDE's two channels ide.0/ide.1,
 * two units each. Generation 2 (q35): the ICH9 AHCI's six one-device ports ide.0-ide.5, channel
 * c location l on port 2c+l. SCSI: one virtio-scsi-pci per controller number, LUN = location.
 */
function placement(controller: 'ide' | 'scsi', controllerNumber: number, location: number, gen2: boolean): Placement {
  if (controller === 'scsi') {
    return [
      ['bus', `scsi${controllerNumber}.0`],
      ['channel', 0],
      ['scsi-id', 0],
      ['lun', location],
    ];
  }
  if (gen2) return [['bus', `ide.${controllerNumber * 2 + location}`]];
  return [
    ['bus', `ide.${controllerNumber}`],
    ['unit', location],
  ];
}

function diskFrontend(disk: DiskAttachment, gen2: boolean, bootindex: number | undefined): string {
  const node = diskNodeName(disk.id);
  if (disk.controller === 'virtio') {
    return optionString('virtio-blk-pci', [['id', node], ['drive', node], ['bootindex', bootindex]]);
  }
  const model = disk.controller === 'ide' ? 'ide-hd' : 'scsi-hd';
  return optionString(model, [
    ['id', node],
    ...placement(disk.controller, disk.controllerNumber, disk.location, gen2),
    ['drive', node],
    ['bootindex', bootindex],
  ]);
}

function dvdArgs(dvd: DvdDrive, gen2: boolean, bootindex: number | undefined): string[] {
  const args: string[] = [];
  if (dvd.iso !== null) {
    args.push(
      '-blockdev',
      optionList([['driver', 'file'], ['node-name', fileNodeName(DVD_NODE_NAME)], ['filename', dvd.iso], ['read-only', true]]),
      '-blockdev',
      optionList([['driver', 'raw'], ['node-name', DVD_NODE_NAME], ['file', fileNodeName(DVD_NODE_NAME)], ['read-only', true]]),
    );
  }
  const model = dvd.controller === 'ide' ? 'ide-cd' : 'scsi-cd';
  args.push(
    '-device',
    optionString(model, [
      ['id', DVD_DEVICE_ID],
      ...placement(dvd.controller, dvd.controllerNumber, dvd.location, gen2),
      ['drive', dvd.iso === null ? undefined : DVD_NODE_NAME],
      ['bootindex', bootindex],
    ]),
  );
  return args;
}

function scsiControllers(config: VmConfig): number[] {
  const numbers = new Set<number>();
  for (const disk of config.disks) if (disk.controller === 'scsi') numbers.add(disk.controllerNumber);
  if (config.dvd?.controller === 'scsi') numbers.add(config.dvd.controllerNumber);
  return [...numbers].sort((a, b) => a - b);
}

/**
 * bootindex per device: the boot order's entries in turn, each covering every device of its
 * kind in config order ("disk" all disks, "dvd" the drive, "network" every adapter). Devices
 * whose kind is not in the order get none. Keys come from bootKey().
 */
export function bootIndexes(config: Pick<VmConfig, 'bootOrder' | 'disks' | 'dvd' | 'networkAdapters'>): Map<string, number> {
  const order = new Map<string, number>();
  const devices: Record<BootDevice, string[]> = {
    disk: config.disks.map((disk) => bootKey('disk', disk.id)),
    dvd: config.dvd ? [bootKey('dvd', DVD_DEVICE_ID)] : [],
    network: config.networkAdapters.map((nic) => bootKey('network', nic.id)),
  };
  for (const kind of new Set(config.bootOrder)) {
    for (const id of devices[kind]) if (!order.has(id)) order.set(id, order.size + 1);
  }
  return order;
}

export function bootKey(kind: BootDevice, id: string): string {
  return `${kind}:${id}`;
}

/** Per-controller limits QEMU enforces; the schema allows more for SCSI and virtio. */
const IDE_LIMITS = { controllers: 2, locations: 2 };

function checkLocations(config: VmConfig): void {
  const taken = new Map<string, string>();
  const claim = (field: string, controller: string, controllerNumber: number, location: number): void => {
    if (controller === 'ide' && (controllerNumber >= IDE_LIMITS.controllers || location >= IDE_LIMITS.locations)) {
      throw invalid(
        field,
        `${field} is IDE ${controllerNumber}:${location}, which does not exist.`,
        'IDE has controllers 0 and 1 with locations 0 and 1.',
      );
    }
    if (controller === 'virtio' && controllerNumber !== 0) {
      throw invalid(field, `${field} is virtio controller ${controllerNumber}; virtio disks use controller 0.`);
    }
    const key = `${controller}:${controllerNumber}:${location}`;
    const other = taken.get(key);
    if (other !== undefined) {
      throw invalid(field, `${field} and ${other} both sit at ${controller} ${controllerNumber}:${location}.`, 'Give each drive its own location.');
    }
    taken.set(key, field);
  };
  config.disks.forEach((disk, index) => claim(`disks[${index}]`, disk.controller, disk.controllerNumber, disk.location));
  if (config.dvd) claim('dvd', config.dvd.controller, config.dvd.controllerNumber, config.dvd.location);
  const ids = new Set<string>();
  config.disks.forEach((disk, index) => {
    if (ids.has(disk.id)) throw invalid(`disks[${index}].id`, `Two disks share the id "${disk.id}".`);
    ids.add(disk.id);
  });
}
