import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { VisorError, VmConfig, parseOrThrow } from '../core/index.js';
import type { VmConfig as VmConfigType } from '../core/index.js';
import { migrateVmConfig } from './migrations.js';
import { writeFileAtomic } from './atomic-write.js';

/** The folders of one VM: everything it owns lives under `dir`, so it can be moved whole. */
export interface VmFolder {
  readonly dir: string;
  readonly configFile: string;
  readonly disksDir: string;
  readonly stateDir: string;
  readonly checkpointsDir: string;
  readonly firmwareDir: string;
}

export function vmFolder(home: string, id: string): VmFolder {
  const dir = join(home, 'vms', id);
  return {
    dir,
    configFile: join(dir, 'vm.json'),
    disksDir: join(dir, 'disks'),
    stateDir: join(dir, 'state'),
    checkpointsDir: join(dir, 'checkpoints'),
    firmwareDir: join(dir, 'firmware'),
  };
}

/** A VM folder that could not be read: shown to the user, never silently dropped. */
export interface BrokenVm {
  id: string;
  dir: string;
  error: string;
}

/**
 * Persistence of VM configurations: `$VISOR_HOME/vms/<id>/vm.json`, schema-versioned and
 * written atomically. Owns nothing at run time; the VM service keeps the live registry.
 */
export class VmStore {
  constructor(readonly home: string) {}

  folder(id: string): VmFolder {
    return vmFolder(this.home, id);
  }

  async loadAll(): Promise<{ vms: VmConfigType[]; broken: BrokenVm[]; unfinished: string[] }> {
    const root = join(this.home, 'vms');
    await mkdir(root, { recursive: true, mode: 0o700 });
    const vms: VmConfigType[] = [];
    const broken: BrokenVm[] = [];
    const unfinished: string[] = [];
    for (const entry of await readdir(root, { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
      const folder = this.folder(entry.name);
      try {
        vms.push(await this.load(folder));
      } catch (error) {
        // A folder without vm.json is a create that died before its last step: not a VM.
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
          unfinished.push(folder.dir);
          continue;
        }
        broken.push({ id: entry.name, dir: folder.dir, error: (error as Error).message });
      }
    }
    return { vms, broken, unfinished };
  }

  async load(folder: VmFolder): Promise<VmConfigType> {
    const text = await readFile(folder.configFile, 'utf8');
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (error) {
      throw new VisorError('failed', 'config-corrupt', `${folder.configFile} is not valid JSON.`, { cause: error });
    }
    return parseOrThrow(VmConfig, migrateVmConfig(raw));
  }

  /** Creates the VM's folders; the config is written last, so a crash before it leaves no VM. */
  async createFolders(id: string): Promise<VmFolder> {
    const folder = this.folder(id);
    await mkdir(folder.dir, { recursive: true, mode: 0o700 });
    await Promise.all([folder.disksDir, folder.stateDir, folder.checkpointsDir].map((d) => mkdir(d, { recursive: true })));
    return folder;
  }

  async save(config: VmConfigType): Promise<void> {
    const folder = this.folder(config.id);
    await writeFileAtomic(folder.configFile, `${JSON.stringify(config, null, 2)}\n`, 0o600);
  }

  /**
   * Removes a VM folder: first renamed aside (atomic: the VM is gone at once, even if the
   * removal of its files is cut short), then deleted.
   */
  async remove(id: string): Promise<void> {
    const folder = this.folder(id);
    const trash = join(this.home, 'vms', `.deleted-${id}`);
    await rename(folder.dir, trash);
    await rm(trash, { recursive: true, force: true });
  }

  /** Leftovers of deletes cut short by a crash. */
  async sweep(): Promise<void> {
    const root = join(this.home, 'vms');
    for (const name of await readdir(root).catch(() => [] as string[])) {
      if (name.startsWith('.deleted-')) await rm(join(root, name), { recursive: true, force: true });
    }
  }

  async exists(path: string): Promise<boolean> {
    return stat(path).then(
      () => true,
      () => false,
    );
  }
}
