import { join } from 'node:path';
import { VisorError } from '../../core/index.js';
import { ENGINE_ERROR_CODES } from './engine-errors.js';

/** Where a VM lives: its persistent folder (vm.json, disks, firmware) and its runtime folder. */
export interface VmPaths {
  /** $VISOR_HOME/vms/<id>: survives reboots. */
  vmDir: string;
  /** $VISOR_RUN/vms/<id>: sockets, pidfiles, logs of the running VM (mode 0700). */
  runDir: string;
  /** Where the VM's own firmware files live (OVMF variables); default `vmDir/firmware`. */
  firmwareDir?: string;
}

/** Every file of a running VM, derived from its paths. Pure. */
export interface RuntimeFiles {
  runDir: string;
  qmpSocket: string;
  vncSocket: string;
  serialSocket: string;
  serialLog: string;
  agentSocket: string;
  pidFile: string;
  qemuLog: string;
  /** The VM's own OVMF variable store (generation 2). */
  firmwareVars: string;
  storageDir: string;
  storageQmpSocket: string;
  storageNbdSocket: string;
  storagePidFile: string;
  storageLog: string;
}

export function runtimeFiles(paths: VmPaths): RuntimeFiles {
  const run = paths.runDir;
  const storage = join(run, 'storage');
  return {
    runDir: run,
    qmpSocket: join(run, 'qmp.sock'),
    vncSocket: join(run, 'vnc.sock'),
    serialSocket: join(run, 'serial.sock'),
    serialLog: join(run, 'serial.log'),
    agentSocket: join(run, 'qga.sock'),
    pidFile: join(run, 'qemu.pid'),
    qemuLog: join(run, 'qemu.log'),
    firmwareVars: join(paths.firmwareDir ?? join(paths.vmDir, 'firmware'), 'OVMF_VARS.fd'),
    storageDir: storage,
    storageQmpSocket: join(storage, 'qmp.sock'),
    storageNbdSocket: join(storage, 'nbd.sock'),
    storagePidFile: join(storage, 'qemu-storage-daemon.pid'),
    storageLog: join(storage, 'qemu-storage-daemon.log'),
  };
}

/** sockaddr_un.sun_path holds 108 bytes including the terminating NUL (unix(7)). */
export const UNIX_SOCKET_PATH_MAX_BYTES = 107;

/** Refuses a runtime folder whose socket paths the kernel could not bind. */
export function checkSocketPaths(files: RuntimeFiles): void {
  const sockets = [files.qmpSocket, files.vncSocket, files.serialSocket, files.agentSocket, files.storageQmpSocket, files.storageNbdSocket];
  for (const socket of sockets) {
    const bytes = Buffer.byteLength(socket);
    if (bytes > UNIX_SOCKET_PATH_MAX_BYTES) {
      throw new VisorError(
        'unavailable',
        ENGINE_ERROR_CODES.pathTooLong,
        `The socket path "${socket}" is ${bytes} bytes long; unix sockets allow at most ${UNIX_SOCKET_PATH_MAX_BYTES}.`,
        { field: 'runDir', hint: 'Use a shorter runtime folder (VISOR_RUN).' },
      );
    }
  }
}
