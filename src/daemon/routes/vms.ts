import type { VmDiskAddInput, VmDvdSpec, VmMoveStorageInput, ExecSpec, OperationContext, VmAction, VmCreateSpec, VmUpdateSpec, VmView } from '../../core/index.js';
import type { ShutdownRequest } from '../../api/contract/index.js';
import type { Handler, HandlerTable, Services } from '../handler.js';
import { acceptJob, ok } from '../handler.js';

/** The VM must exist before a job is made for it; the job works on its id (names can change). */
function vmJob(
  kind: string,
  action: VmAction,
  work: (s: Services, id: string, input: Parameters<Handler>[0], ctx: OperationContext) => Promise<VmView>,
): Handler {
  return async (input, s) => {
    const vm = s.vmService.get(input.params.ref!);
    // An illegal transition is refused now (409), not as a failed job.
    s.vmService.checkAction(vm.config.id, action);
    return acceptJob(s, input, { kind, target: vm.config.name, work: (ctx) => work(s, vm.config.id, input, ctx) });
  };
}

const ref = (input: Parameters<Handler>[0]): string => input.params.ref!;

export const vmHandlers: HandlerTable = {
  listVms: async (_input, s) => ok(s.vmService.list()),
  getVm: async (input, s) => ok(s.vmService.get(ref(input))),
  createVm: async (input, s) => {
    const spec = input.body as VmCreateSpec;
    // Bad input is refused now (4xx), not as a failed job.
    await s.vmService.validateCreate(spec);
    return acceptJob(s, input, { kind: 'vm-create', target: spec.name, work: (ctx) => s.vmService.create(spec, ctx) });
  },
  updateVm: async (input, s) => ok(await s.vmService.update(ref(input), input.body as VmUpdateSpec)),
  deleteVm: async (input, s) => {
    await s.vmService.delete(ref(input), { force: input.query.force === 'true' });
    return { status: 204 };
  },
  startVm: vmJob('vm-start', 'start', (s, id, _input, ctx) => s.vmService.start(id, ctx)),
  shutDownVm: vmJob('vm-shutdown', 'shut-down', (s, id, input, ctx) => {
    const options = input.body as ShutdownRequest;
    return s.vmService.shutDown(id, { timeoutSeconds: options.timeoutSeconds, force: options.force }, ctx);
  }),
  saveVm: vmJob('vm-save', 'save', (s, id, _input, ctx) => s.vmService.save(id, ctx)),
  turnOffVm: async (input, s) => ok(await s.vmService.turnOff(ref(input))),
  pauseVm: async (input, s) => ok(await s.vmService.pause(ref(input))),
  resumeVm: async (input, s) => ok(await s.vmService.resume(ref(input))),
  restartVm: async (input, s) => ok(await s.vmService.restart(ref(input))),
  execInVm: async (input, s) => ok(await s.vmService.exec(ref(input), input.body as ExecSpec, input.signal)),
  moveVmStorage: async (input, s) => {
    const vm = s.vmService.get(ref(input));
    const spec = input.body as VmMoveStorageInput;
    // Bad input (no folder, a target that exists, a state that cannot move) is refused now.
    await s.vmService.validateMoveStorage(vm.config.id, spec);
    return acceptJob(s, input, { kind: 'vm-move-storage', target: vm.config.name, work: (ctx) => s.vmService.moveStorage(vm.config.id, spec, ctx) });
  },
  listVmDisks: async (input, s) => ok(s.vmService.listDisks(ref(input))),
  addVmDisk: async (input, s) => ok(await s.vmService.addDisk(ref(input), input.body as VmDiskAddInput)),
  removeVmDisk: async (input, s) => ok(await s.vmService.removeDisk(ref(input), input.params.diskId!)),
  setVmDvd: async (input, s) => ok(await s.vmService.setDvd(ref(input), input.body as VmDvdSpec)),
  getVmScreenshot: async (input, s) => ({ status: 200, body: await s.vmService.screenshot(ref(input)), contentType: 'image/png' }),
};
