import { mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
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
  return folderAt(join(home, 'vms', id));
}

/** The layout of a VM folder at `dir`. */
export function folderAt(dir: string): VmFolder {
  return {
    dir,
    configFile: join(dir, 'vm.json'),
    disksDir: join(dir, 'disks'),
    stateDir: join(dir, 'state'),
    checkpointsDir: join(dir, 'checkpoints'),
    firmwareDir: join(dir, 'firmware'),
  };
}

/** Creates a VM folder's layout (no vm.json). */
export async function makeFolderLayout(folder: VmFolder): Promise<void> {
  await mkdir(folder.dir, { recursive: true, mode: 0o700 });
  await Promise.all([folder.disksDir, folder.stateDir, folder.checkpointsDir].map((d) => mkdir(d, { recursive: true })));
}

/**
 * A VM's registry entry is always `$VISOR_HOME/vms/<id>/`. A VM whose storage was moved
 * elsewhere (Hyper-V's Move-VMStorage) keeps its entry, which then holds this file: the
 * absolute path of the folder the VM lives in now. Written atomically, so a move switches
 * the VM from one folder to the other in one step.
 */
export const LOCATION_FILE = 'location';

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
  /** VMs living outside their registry entry: id → folder (from each entry's location file). */
  private readonly locations = new Map<string, string>();

  constructor(readonly home: string) {}

  /** Where the VM's files are: its registry entry, or the folder its location file names. */
  folder(id: string): VmFolder {
    const moved = this.locations.get(id);
    return moved ? folderAt(moved) : vmFolder(this.home, id);
  }

  /** `$VISOR_HOME/vms/<id>`: stays put when the VM's files move (it holds the location file). */
  registryDir(id: string): string {
    return join(this.home, 'vms', id);
  }

  /**
   * Points the VM at the folder its files now live in (null or the registry entry itself:
   * back home). One atomic write; the caller copies the files first and removes the old ones
   * after.
   */
  async relocate(id: string, dir: string | null): Promise<VmFolder> {
    const registry = this.registryDir(id);
    const pointer = join(registry, LOCATION_FILE);
    if (dir === null || dir === registry) {
      await rm(pointer, { force: true });
      this.locations.delete(id);
    } else {
      await writeFileAtomic(pointer, `${dir}\n`, 0o600);
      this.locations.set(id, dir);
    }
    return this.folder(id);
  }

  /** The folder a registry entry's location file names, or null (the VM lives in the entry). */
  private async readLocation(registry: string): Promise<string | null> {
    const text = await readFile(join(registry, LOCATION_FILE), 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return null;
      throw error;
    });
    if (text === null) return null;
    const dir = text.trim();
    if (!isAbsolute(dir)) throw new VisorError('failed', 'config-corrupt', `${join(registry, LOCATION_FILE)} does not name an absolute folder.`);
    return dir;
  }

  async loadAll(): Promise<{ vms: VmConfigType[]; broken: BrokenVm[]; unfinished: string[] }> {
    const root = join(this.home, 'vms');
    await mkdir(root, { recursive: true, mode: 0o700 });
    const vms: VmConfigType[] = [];
    const broken: BrokenVm[] = [];
    const unfinished: string[] = [];
    for (const entry of await readdir(root, { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
      let folder = this.folder(entry.name);
      try {
        const moved = await this.readLocation(this.registryDir(entry.name));
        if (moved) {
          this.locations.set(entry.name, moved);
          folder = this.folder(entry.name);
        }
        vms.push(await this.load(folder));
      } catch (error) {
        // A folder without vm.json is a create that died before its last step: not a VM. A
        // location that is missing altogether (a share not mounted) is a broken VM, kept.
        if ((error as NodeJS.ErrnoException).code === 'ENOENT' && (await pathExists(folder.dir))) {
          unfinished.push(this.registryDir(entry.name));
          this.locations.delete(entry.name);
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
    await makeFolderLayout(folder);
    return folder;
  }

  /** Writes vm.json into the VM's folder, or into `folder` (a move writes its target first). */
  async save(config: VmConfigType, folder: VmFolder = this.folder(config.id)): Promise<void> {
    await writeFileAtomic(folder.configFile, `${JSON.stringify(config, null, 2)}\n`, 0o600);
  }

  /**
   * Removes a VM: its registry entry is first renamed aside (atomic: the VM is gone at once,
   * even if the removal of its files is cut short), then the folder it lives in and the entry
   * are deleted.
   */
  async remove(id: string): Promise<void> {
    const trash = join(this.home, 'vms', `.deleted-${id}`);
    await rename(this.registryDir(id), trash);
    this.locations.delete(id);
    await this.removeTrash(trash);
  }

  /** Leftovers of deletes cut short by a crash. */
  async sweep(): Promise<void> {
    const root = join(this.home, 'vms');
    for (const name of await readdir(root).catch(() => [] as string[])) {
      if (name.startsWith('.deleted-')) await this.removeTrash(join(root, name));
    }
  }

  private async removeTrash(trash: string): Promise<void> {
    const moved = await this.readLocation(trash).catch(() => null);
    if (moved) await rm(moved, { recursive: true, force: true });
    await rm(trash, { recursive: true, force: true });
  }
}

/** Whether something exists at `path` (stat succeeds). */
export async function pathExists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}
