import type { HandlerTable } from '../handler.js';
import { ok } from '../handler.js';

export const jobHandlers: HandlerTable = {
  listJobs: async (_input, s) => ok(s.jobs.list()),
  getJob: async (input, s) => ok(s.jobs.get(input.params.id!)),
  cancelJob: async (input, s) => ok(s.jobs.cancel(input.params.id!)),
};
