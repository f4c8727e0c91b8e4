import type { HandlerTable } from '../handler.js';
import { acceptJob, ok } from '../handler.js';

export const hostHandlers: HandlerTable = {
  getDaemon: async (_input, s) => ok({ version: s.version, pid: process.pid, startedAt: s.startedAt.toISOString() }),
  getOpenApi: async (_input, s) => ok(s.openApi()),
  getHost: async (_input, s) => ok(await s.hostInfo()),
  listImages: async (_input, s) => ok(await s.vmService.images()),
  stopVmsForHost: async (input, s) => acceptJob(s, input, { kind: 'host-stop-vms', target: 'host', work: (ctx) => s.vmService.stopVmsForHost(ctx) }),
};
