import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { VisorError } from '../../core/index.js';
import type { DiskAttachment, VmConfig } from '../../core/index.js';
import { sampleVmConfig } from '../../core/vm-config-fixture.js';
import { diskNodeName } from './block-nodes.js';
import { selectFirmware } from './firmware.js';
import { VGA_MEMORY_MIB, buildQemuArgs } from './qemu-args.js';
import { runtimeFiles } from './runtime-files.js';
import { buildStorageDaemonArgs } from './storage-daemon-args.js';

const files = runtimeFiles({ vmDir: '/var/lib/visor/vms/x', runDir: '/run/visor/vms/x' });

function vm(overrides: Partial<VmConfig> = {}): VmConfig {
  return sampleVmConfig(overrides);
}

function disk(id: string, rest: Partial<DiskAttachment> = {}): DiskAttachment {
  return { id, controller: 'ide', controllerNumber: 0, location: 0, path: `/d/${id}.qcow2`, format: 'qcow2', readOnly: false, ...rest };
}

function build(config: VmConfig, extra: { incoming?: boolean; accelerator?: 'kvm' | 'tcg' } = {}): string[] {
  return buildQemuArgs(config, { files, accelerator: extra.accelerator ?? 'tcg', firmware: selectFirmware(config), incoming: extra.incoming });
}

/** The value after each occurrence of `flag`. */
function values(args: string[], flag: string): string[] {
  return args.flatMap((arg, i) => (arg === flag ? [args[i + 1] ?? ''] : []));
}

function device(args: string[], prefix: string): string {
  const found = values(args, '-device').filter((d) => d.startsWith(prefix));
  assert.equal(found.length, 1, `expected one -device ${prefix}, got ${JSON.stringify(found)}`);
  return found[0] ?? '';
}

describe('buildQemuArgs', () => {
  it('starts with the fixed flags, name, uuid, accelerator, cpu, smp and memory', () => {
    const args = build(vm());
    assert.deepEqual(args.slice(0, 6), ['-nodefaults', '-no-user-config', '-name', 'guest=web1,debug-threads=on', '-uuid', '0b6f8c3e-5d1a-4c4e-9a57-3f2d1e0c9b8a']);
    assert.deepEqual(values(args, '-accel'), ['tcg,thread=multi']);
    assert.deepEqual(values(args, '-cpu'), ['max']);
    assert.deepEqual(values(args, '-smp'), ['2']);
    assert.deepEqual(values(args, '-m'), ['512M']);
    assert.ok(!args.includes('-drive'), 'never -drive');
    assert.ok(!args.includes('-incoming'));
    assert.equal(args.at(-1), '-daemonize');
  });

  it('uses KVM with the host CPU when asked', () => {
    const args = build(vm(), { accelerator: 'kvm' });
    assert.deepEqual(values(args, '-accel'), ['kvm']);
    assert.deepEqual(values(args, '-cpu'), ['host']);
  });

  it('generation 1 is pc with SeaBIOS (no pflash)', () => {
    const args = build(vm());
    assert.deepEqual(values(args, '-machine'), ['pc']);
    assert.ok(!args.some((a) => a.includes('pflash')));
  });

  it('generation 2 is q35 with OVMF code read-only and the VM\'s own vars', () => {
    const args = build(vm({ generation: 2 }));
    assert.deepEqual(values(args, '-machine'), ['q35,pflash0=firmware-code,pflash1=firmware-vars']);
    const blockdevs = values(args, '-blockdev');
    assert.ok(blockdevs.includes('driver=file,node-name=firmware-code,filename=/usr/share/OVMF/OVMF_CODE_4M.fd,read-only=on'));
    assert.ok(blockdevs.includes('driver=file,node-name=firmware-vars,filename=/var/lib/visor/vms/x/firmware/OVMF_VARS.fd'));
    assert.ok(!args.includes('-global'));
  });

  it('generation 2 with Secure Boot: secboot code, SMM, secure pflash', () => {
    const args = build(vm({ generation: 2, secureBoot: true }));
    assert.deepEqual(values(args, '-machine'), ['q35,smm=on,pflash0=firmware-code,pflash1=firmware-vars']);
    assert.ok(values(args, '-blockdev').some((b) => b.includes('OVMF_CODE_4M.secboot.fd')));
    assert.deepEqual(values(args, '-global'), ['driver=cfi.pflash01,property=secure,value=on']);
    assert.equal(selectFirmware({ generation: 2, secureBoot: true })?.varsTemplate, '/usr/share/OVMF/OVMF_VARS_4M.ms.fd');
  });

  it('IDE on generation 1: two channels of two units', () => {
    const disks = [disk('a'), disk('b', { location: 1 }), disk('c', { controllerNumber: 1, location: 1 })];
    const args = build(vm({ disks }));
    assert.equal(device(args, 'ide-hd,id=disk-a'), 'ide-hd,id=disk-a,bus=ide.0,unit=0,drive=disk-a,bootindex=1');
    assert.equal(device(args, 'ide-hd,id=disk-b'), 'ide-hd,id=disk-b,bus=ide.0,unit=1,drive=disk-b,bootindex=2');
    assert.equal(device(args, 'ide-hd,id=disk-c'), 'ide-hd,id=disk-c,bus=ide.1,unit=1,drive=disk-c,bootindex=3');
  });

  it('IDE on generation 2: AHCI ports, one device each', () => {
    const disks = [disk('a'), disk('c', { controllerNumber: 1, location: 1 })];
    const args = build(vm({ generation: 2, disks }));
    assert.match(device(args, 'ide-hd,id=disk-a'), /,bus=ide\.0,drive=disk-a,/);
    assert.match(device(args, 'ide-hd,id=disk-c'), /,bus=ide\.3,drive=disk-c,/);
  });

  it('qcow2 and raw are opened by QEMU: file node under a format node', () => {
    const args = build(vm({ disks: [disk('a'), disk('r', { format: 'raw', path: '/d/r.img', location: 1, readOnly: true })] }));
    const blockdevs = values(args, '-blockdev');
    assert.deepEqual(blockdevs, [
      'driver=file,node-name=disk-a-file,filename=/d/a.qcow2',
      'driver=qcow2,node-name=disk-a,file=disk-a-file',
      'driver=file,node-name=disk-r-file,filename=/d/r.img,read-only=on',
      'driver=raw,node-name=disk-r,file=disk-r-file,read-only=on',
    ]);
  });

  it('SCSI: one virtio-scsi-pci per controller number, disks by LUN', () => {
    const disks = [disk('a', { controller: 'scsi' }), disk('b', { controller: 'scsi', controllerNumber: 2, location: 5 })];
    const args = build(vm({ generation: 2, disks }));
    assert.deepEqual(
      values(args, '-device').filter((d) => d.startsWith('virtio-scsi-pci')),
      ['virtio-scsi-pci,id=scsi0', 'virtio-scsi-pci,id=scsi2'],
    );
    assert.equal(device(args, 'scsi-hd,id=disk-b'), 'scsi-hd,id=disk-b,bus=scsi2.0,channel=0,scsi-id=0,lun=5,drive=disk-b,bootindex=2');
  });

  it('virtio: a virtio-blk-pci per disk', () => {
    const args = build(vm({ disks: [disk('v', { controller: 'virtio' })] }));
    assert.equal(device(args, 'virtio-blk-pci'), 'virtio-blk-pci,id=disk-v,drive=disk-v,bootindex=1');
  });

  it('a qcow2 differencing child of a VHDX template is served by the storage daemon; of a qcow2 one, by QEMU', () => {
    const disks = [
      disk('c', { path: '/d/c.qcow2', backing: { path: '/share/gold.vhdx', format: 'vhdx' } }),
      disk('q', { path: '/d/q.qcow2', location: 1, backing: { path: 'nfs://srv/gold.qcow2', format: 'qcow2' } }),
    ];
    const blockdevs = values(build(vm({ disks })), '-blockdev');
    assert.ok(blockdevs.some((b) => b.startsWith('driver=nbd,node-name=disk-c,')), blockdevs.join('\n'));
    assert.ok(blockdevs.includes('driver=qcow2,node-name=disk-q,file=disk-q-file'), blockdevs.join('\n'));
    const daemon = buildStorageDaemonArgs({ disks }, files);
    assert.ok(daemon?.includes('driver=qcow2,node-name=disk-c,file=disk-c-file'), 'the daemon opens the child; its parent comes from the qcow2 header');
    assert.ok(!daemon?.some((a) => a.includes('disk-q')));
  });

  it('vhdx and vhd disks come from the storage daemon over NBD', () => {
    const disks = [
      disk('x', { format: 'vhdx', path: '/d/x.vhdx' }),
      disk('h', { format: 'vhd', path: '/d/h.vhd', location: 1, readOnly: true }),
      disk('q', { controllerNumber: 1 }),
    ];
    const args = build(vm({ disks }));
    const blockdevs = values(args, '-blockdev');
    assert.ok(blockdevs.includes('driver=nbd,node-name=disk-x,server.type=unix,server.path=/run/visor/vms/x/storage/nbd.sock,export=x'));
    assert.ok(blockdevs.includes('driver=nbd,node-name=disk-h,server.type=unix,server.path=/run/visor/vms/x/storage/nbd.sock,export=h,read-only=on'));
    assert.ok(!blockdevs.some((b) => b.includes('vhdx') || b.includes('vpc')), 'no vhdx/vpc node inside QEMU');
    assert.ok(blockdevs.includes('driver=qcow2,node-name=disk-q,file=disk-q-file'));

    const daemon = buildStorageDaemonArgs({ disks }, files);
    assert.ok(daemon);
    assert.deepEqual(daemon, [
      '--blockdev', 'driver=file,node-name=disk-x-file,filename=/d/x.vhdx',
      '--blockdev', 'driver=vhdx,node-name=disk-x,file=disk-x-file',
      '--blockdev', 'driver=file,node-name=disk-h-file,filename=/d/h.vhd,read-only=on',
      '--blockdev', 'driver=vpc,node-name=disk-h,file=disk-h-file,read-only=on',
      '--nbd-server', 'addr.type=unix,addr.path=/run/visor/vms/x/storage/nbd.sock',
      '--export', 'type=nbd,id=export-disk-x,node-name=disk-x,name=x,writable=on',
      '--export', 'type=nbd,id=export-disk-h,node-name=disk-h,name=h,writable=off',
      '--chardev', 'socket,id=qmp,path=/run/visor/vms/x/storage/qmp.sock,server=on,wait=off',
      '--monitor', 'chardev=qmp,mode=control',
      '--pidfile', '/run/visor/vms/x/storage/qemu-storage-daemon.pid',
      '--daemonize',
    ]);
  });

  it('needs no storage daemon without vhdx or vhd disks', () => {
    assert.equal(buildStorageDaemonArgs({ disks: [disk('a')] }, files), null);
  });

  it('DVD: empty drive has no medium; an ISO gets a read-only raw node', () => {
    const empty = build(vm({ dvd: { controller: 'ide', controllerNumber: 1, location: 0, iso: null } }));
    assert.equal(device(empty, 'ide-cd'), 'ide-cd,id=dvd0,bus=ide.1,unit=0');
    const iso = build(vm({ dvd: { controller: 'scsi', controllerNumber: 0, location: 1, iso: '/iso/debian,12.iso' } }));
    assert.equal(device(iso, 'scsi-cd'), 'scsi-cd,id=dvd0,bus=scsi0.0,channel=0,scsi-id=0,lun=1,drive=dvd0-media');
    assert.ok(values(iso, '-blockdev').includes('driver=file,node-name=dvd0-media-file,filename=/iso/debian,,12.iso,read-only=on'));
    assert.ok(values(iso, '-device').includes('virtio-scsi-pci,id=scsi0'));
  });

  it('boot order assigns bootindex by kind, in order', () => {
    const config = vm({
      bootOrder: ['dvd', 'network', 'disk'],
      disks: [disk('a'), disk('b', { location: 1 })],
      dvd: { controller: 'ide', controllerNumber: 1, location: 0, iso: null },
      networkAdapters: [{ id: 'n0', mac: '52:54:00:00:00:01', model: 'e1000', switchName: null }],
    });
    const args = build(config);
    assert.match(device(args, 'ide-cd'), /bootindex=1$/);
    assert.equal(device(args, 'e1000'), 'e1000,id=nic0,mac=52:54:00:00:00:01,bootindex=2');
    assert.match(device(args, 'ide-hd,id=disk-a'), /bootindex=3$/);
    assert.match(device(args, 'ide-hd,id=disk-b'), /bootindex=4$/);
  });

  it('devices whose kind is not in the boot order get no bootindex', () => {
    const args = build(vm({ bootOrder: ['dvd'], disks: [disk('a')], networkAdapters: [{ id: 'n', mac: '52:54:00:00:00:02', model: 'virtio', switchName: null }] }));
    assert.ok(!device(args, 'ide-hd').includes('bootindex'));
    assert.equal(device(args, 'virtio-net-pci'), 'virtio-net-pci,id=nic0,mac=52:54:00:00:00:02');
  });

  it('display, VNC, serial, guest agent, balloon, QMP and pidfile sit in the runtime folder', () => {
    const args = build(vm());
    assert.equal(device(args, 'VGA'), `VGA,id=video0,edid=on,xres=1280,yres=800,vgamem_mb=${VGA_MEMORY_MIB}`);
    assert.ok(VGA_MEMORY_MIB * 1024 * 1024 >= 1600 * 1200 * 4);
    assert.deepEqual(values(args, '-vnc'), ['unix:/run/visor/vms/x/vnc.sock']);
    assert.deepEqual(values(args, '-chardev'), [
      'socket,id=serial0,path=/run/visor/vms/x/serial.sock,server=on,wait=off,logfile=/run/visor/vms/x/serial.log',
      'socket,id=qga0,path=/run/visor/vms/x/qga.sock,server=on,wait=off',
      'socket,id=qmp,path=/run/visor/vms/x/qmp.sock,server=on,wait=off',
    ]);
    assert.deepEqual(values(args, '-serial'), ['chardev:serial0']);
    assert.equal(device(args, 'virtserialport'), 'virtserialport,bus=vserial0.0,chardev=qga0,name=org.qemu.guest_agent.0');
    assert.equal(device(args, 'virtio-balloon-pci'), 'virtio-balloon-pci,id=balloon0,free-page-reporting=on');
    assert.deepEqual(values(args, '-mon'), ['chardev=qmp,mode=control']);
    assert.deepEqual(values(args, '-pidfile'), ['/run/visor/vms/x/qemu.pid']);
    assert.deepEqual(values(args, '-D'), ['/run/visor/vms/x/qemu.log']);
  });

  it('incoming: -incoming defer and -S so the restored VM stays paused', () => {
    const args = build(vm(), { incoming: true });
    assert.deepEqual(args.slice(-3), ['-incoming', 'defer', '-S']);
  });

  it('refuses two drives at one location, and IDE locations that do not exist', () => {
    assert.throws(
      () => build(vm({ disks: [disk('a'), disk('b')] })),
      (e: unknown) => e instanceof VisorError && e.kind === 'invalid' && e.field === 'disks[1]',
    );
    assert.throws(
      () => build(vm({ disks: [disk('a')], dvd: { controller: 'ide', controllerNumber: 0, location: 0, iso: null } })),
      (e: unknown) => e instanceof VisorError && e.field === 'dvd',
    );
    assert.throws(() => build(vm({ disks: [disk('a', { controllerNumber: 2 })] })), (e: unknown) => e instanceof VisorError && e.field === 'disks[0]');
  });

  it('is deterministic', () => {
    const config = vm({ generation: 2, disks: [disk('a', { controller: 'scsi' }), disk('x', { format: 'vhdx', controller: 'virtio' })] });
    assert.deepEqual(build(config), build(config));
  });
});

describe('diskNodeName', () => {
  it('keeps short plain ids and hashes the rest to a valid, stable node name', () => {
    assert.equal(diskNodeName('boot'), 'disk-boot');
    const uuid = diskNodeName('0b6f8c3e-5d1a-4c4e-9a57-3f2d1e0c9b8a');
    assert.match(uuid, /^disk-[0-9a-f]{16}$/);
    assert.equal(uuid, diskNodeName('0b6f8c3e-5d1a-4c4e-9a57-3f2d1e0c9b8a'));
    assert.ok(`${uuid}-file`.length <= 31);
    assert.match(diskNodeName('9lives'), /^disk-[0-9a-f]{16}$/);
  });
});

describe('disk locations in the argv', () => {
  it('a disk under /dev/ opens with host_device; the caller may say which paths are devices', () => {
    const args = build(vm({ disks: [disk('pt', { path: '/dev/disk/by-id/usb-x', format: 'raw', controller: 'scsi' })] }));
    assert.ok(values(args, '-blockdev').includes('driver=host_device,node-name=disk-pt-file,filename=/dev/disk/by-id/usb-x'));
    const explicit = buildQemuArgs(vm({ disks: [disk('pt', { path: '/srv/lv', format: 'raw' })] }), {
      files,
      accelerator: 'tcg',
      firmware: null,
      blockDevices: new Set(['/srv/lv']),
    });
    assert.ok(values(explicit, '-blockdev').includes('driver=host_device,node-name=disk-pt-file,filename=/srv/lv'));
  });

  it('network disks become protocol nodes QEMU opens itself; VHDX ones go to the storage daemon', () => {
    const args = build(vm({ disks: [disk('n', { path: 'nfs://10.0.0.1/export/a.qcow2', controller: 'scsi' })] }));
    assert.deepEqual(values(args, '-blockdev').slice(0, 2), [
      'driver=nfs,node-name=disk-n-file,server.type=inet,server.host=10.0.0.1,path=/export/a.qcow2',
      'driver=qcow2,node-name=disk-n,file=disk-n-file',
    ]);
    const daemon = buildStorageDaemonArgs(vm({ disks: [disk('s', { path: 'ssh://root@h/srv/a.vhdx', format: 'vhdx' })] }), files);
    assert.ok(daemon?.includes('driver=ssh,node-name=disk-s-file,server.host=h,server.port=22,path=/srv/a.vhdx,user=root'));
    assert.throws(() => build(vm({ disks: [disk('h', { path: 'http://h/a.qcow2' })] })), (e: unknown) => e instanceof VisorError && e.field === 'disks[0].path');
  });

  it('generation 2 gets empty PCIe root ports for hot-plug; generation 1 none', () => {
    const gen2 = values(build(vm({ generation: 2 })), '-device').filter((d) => d.startsWith('pcie-root-port'));
    assert.deepEqual(gen2, [
      'pcie-root-port,id=hotplug0,bus=pcie.0,chassis=1',
      'pcie-root-port,id=hotplug1,bus=pcie.0,chassis=2',
      'pcie-root-port,id=hotplug2,bus=pcie.0,chassis=3',
      'pcie-root-port,id=hotplug3,bus=pcie.0,chassis=4',
    ]);
    assert.deepEqual(values(build(vm()), '-device').filter((d) => d.startsWith('pcie-root-port')), []);
  });

  it('a storage daemon started on demand has no disk, only its NBD server and monitor', () => {
    assert.equal(buildStorageDaemonArgs(vm(), files), null);
    const args = buildStorageDaemonArgs(vm(), files, { always: true });
    assert.ok(args);
    assert.deepEqual(values(args, '--blockdev'), []);
    assert.deepEqual(values(args, '--nbd-server'), ['addr.type=unix,addr.path=/run/visor/vms/x/storage/nbd.sock']);
  });
});
