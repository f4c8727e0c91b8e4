import { z } from 'zod';

/**
 * Host facts as the API shows them (`visor host info`, `GET /v1/host`). host/ computes them and
 * is checked against this schema at compile time, so the wire contract has one source.
 */
export const HostFacts = z.object({
  cpu: z.object({ count: z.number().int(), model: z.string(), vendor: z.string(), vmx: z.boolean(), svm: z.boolean() }),
  memory: z.object({ total: z.number().int(), available: z.number().int() }),
  accelerator: z.object({
    kind: z.enum(['kvm', 'tcg']),
    reason: z.string(),
    facts: z.object({
      device: z.enum(['missing', 'no-access', 'opens']),
      flavour: z.enum(['intel', 'amd', 'pvm', 'none']),
      cpuHasVirtualization: z.boolean(),
    }),
    cached: z.boolean(),
  }),
  qemu: z.object({ binary: z.string(), storageDaemon: z.string(), version: z.string(), versionText: z.string() }).nullable(),
  qemuError: z.string().nullable(),
  nics: z.array(
    z.object({
      name: z.string(),
      kind: z.enum(['wired', 'wireless', 'virtual']),
      mac: z.string().nullable(),
      mtu: z.number().int().nullable(),
      state: z.string(),
    }),
  ),
  privileges: z.object({ uid: z.number().int(), root: z.boolean(), netAdmin: z.boolean() }),
  kernel: z.string(),
});
export type HostFacts = z.infer<typeof HostFacts>;
