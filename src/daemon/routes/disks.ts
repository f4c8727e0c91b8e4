import { realpath } from 'node:fs/promises';
import { resolve } from 'node:path';
import { VisorError } from '../../core/index.js';
import type { DiskConvertSpec, DiskNewSpec, DiskPathSpec, DiskResizeSpec } from '../../core/index.js';
import {
  inspectDisk,
  prepareCompactDisk,
  prepareConvertDisk,
  prepareMergeDisk,
  prepareNewDisk,
  prepareResizeDisk,
} from '../../storage/index.js';
import type { DiskWork } from '../../storage/index.js';
import type { Handler, HandlerTable, Services } from '../handler.js';
import { acceptJob, ok } from '../handler.js';

/**
 * `/v1/disks/...`: disk files at rest. Every check (the body, the files, whether a VM that is
 * not off uses the disk or a file of its chain) runs before the job is made; the job does only
 * the work.
 */
function diskJob<S>(kind: string, pathOf: (spec: S) => string, prepare: (spec: S) => Promise<DiskWork>, touches: 'chain' | 'none' = 'chain'): Handler {
  return async (input, s) => {
    const spec = input.body as S;
    const path = pathOf(spec);
    if (touches === 'chain') await refuseIfInUse(s, path);
    const work = await prepare(spec);
    return acceptJob(s, input, { kind, target: path, work });
  };
}


/** Refuses when a VM that is not off (running, paused, saved...) has the disk, or a file of its chain, attached. */
async function refuseIfInUse(s: Services, path: string): Promise<void> {
  const info = await inspectDisk(resolve(path)).catch(() => undefined);
  if (!info) return; // the operation's own checks say what is wrong with the file
  const files = new Set(await Promise.all([info.path, ...info.parents.map((p) => p.path)].map(canonical)));
  for (const vm of s.vmService.list()) {
    if (vm.state === 'off') continue;
    for (const disk of vm.config.disks) {
      if (files.has(await canonical(disk.path))) {
        throw new VisorError('conflict', 'disk-in-use', `Cannot change "${path}": VM "${vm.config.name}" is ${vm.state} with "${disk.path}" attached.`, {
          field: 'path',
          hint: `Turn VM "${vm.config.name}" off first (or remove the disk from it).`,
        });
      }
    }
  }
}

const canonical = (path: string): Promise<string> => realpath(path).catch(() => resolve(path));

export const diskHandlers: HandlerTable = {
  inspectDisk: async (input, s) => {
    void s;
    return ok(await inspectDisk(resolve(input.query.path as string), input.signal));
  },
  // A new disk touches no existing file but its parent, which it only reads.
  newDisk: diskJob<DiskNewSpec>('disk-new', (spec) => spec.path, prepareNewDisk, 'none'),
  convertDisk: diskJob<DiskConvertSpec>('disk-convert', (spec) => spec.path, prepareConvertDisk),
  resizeDisk: diskJob<DiskResizeSpec>('disk-resize', (spec) => spec.path, prepareResizeDisk),
  compactDisk: diskJob<DiskPathSpec>('disk-compact', (spec) => spec.path, prepareCompactDisk),
  mergeDisk: diskJob<DiskPathSpec>('disk-merge', (spec) => spec.path, prepareMergeDisk),
};
