import type { HandlerTable } from '../handler.js';
import { ok } from '../handler.js';

export const hostHandlers: HandlerTable = {
  getDaemon: async (_input, s) => ok({ version: s.version, pid: process.pid, startedAt: s.startedAt.toISOString() }),
  getOpenApi: async (_input, s) => ok(s.openApi()),
  getHost: async (_input, s) => ok(await s.hostInfo()),
  listImages: async (_input, s) => ok(await s.vmService.images()),
};
