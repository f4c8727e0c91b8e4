/** engine/qemu: QEMU argv, launch/reattach, QMP, guest agent, capability probe. */
export { buildQemuArgs, bootIndexes, VGA_MEMORY_MIB, PCIE_HOTPLUG_PORTS } from './qemu-args.js';
export type { Accelerator, QemuArgsOptions } from './qemu-args.js';
export { buildStorageDaemonArgs } from './storage-daemon-args.js';
export { diskNodeName, fileNodeName, needsStorageDaemon, formatDriver, diskNodes, DVD_DEVICE_ID, DVD_NODE_NAME, FIRMWARE_VARS_MOVE_ID } from './block-nodes.js';
export { parseDiskLocation, protocolOptions, isHostDevicePath, isRemoteLocation, REMOTE_DISK_SCHEMES } from './disk-location.js';
export type { DiskLocation, RemoteDiskLocation } from './disk-location.js';
export { BLOCK_ERROR_CODES, diskServing } from './block-graph.js';
export type { DiskServing } from './block-graph.js';
export type { HotplugOptions } from './hotplug.js';
export type { DiskMove, MovedDisk, StorageMoveOptions, StorageMoveResult } from './storage-move.js';
export { decideMoveRecovery } from './move-recovery.js';
export { recoverStorageMove } from './storage-move-recovery.js';
export type { MovePhase, MoveRecord, MoveRecordDisk, MoveObservation, MoveRecovery, DiskRecovery, RecoveryStep } from './move-recovery.js';
export { selectFirmware, OVMF_DIR } from './firmware.js';
export type { UefiFirmware } from './firmware.js';
export { runtimeFiles, checkSocketPaths, UNIX_SOCKET_PATH_MAX_BYTES } from './runtime-files.js';
export type { RuntimeFiles, VmPaths } from './runtime-files.js';

export { QmpMonitor, DEFAULT_COMMAND_TIMEOUT_MS } from './qmp-monitor.js';
export type { QmpMonitorEvents } from './qmp-monitor.js';
export { QmpClient } from './qmp-client.js';
export type { QmpEvent, QmpGreeting, QemuRunState, MigrationInfo } from './qmp-types.js';
export { GuestAgent } from './guest-agent.js';
export type { ExecOptions, GuestExecResult } from './guest-agent.js';

export { launchVm } from './launcher.js';
export type { LaunchOptions } from './launcher.js';
export { reattachVm } from './reattach.js';
export type { ReattachOptions, ExitedVm } from './reattach.js';
export { QemuInstance } from './qemu-instance.js';
export type { LaunchTimings } from './qemu-instance.js';
export { StorageDaemon } from './storage-daemon.js';
export type { VmExit, VmExitKind } from './vm-exit.js';

export { probeQemu, qemuCapabilities, parseQemuVersion, isSupportedVersion, MIN_QEMU_VERSION } from './capabilities.js';
export type { QemuCapabilities, QemuVersion, ProbeOptions } from './capabilities.js';
export { ENGINE_ERROR_CODES, isEngineError } from './engine-errors.js';
export type { WaitOptions } from './deadline.js';
export { processStartTime } from './process-probe.js';
