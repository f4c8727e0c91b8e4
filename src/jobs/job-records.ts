import { open, readdir, readFile, rename, rm, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Job } from './job.js';

/**
 * Running jobs on disk: one `<id>.json` per job in the jobs folder, written atomically (temp file,
 * fsync, rename, fsync the folder), removed when the job finishes. What is left at start-up was
 * running when a daemon died.
 */
export class JobRecords {
  constructor(readonly dir: string) {}

  async write(job: Job): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const path = this.pathOf(job.id);
    const temp = join(this.dir, `.${job.id}.${randomBytes(4).toString('hex')}.tmp`);
    const file = await open(temp, 'wx', 0o600);
    try {
      await file.writeFile(JSON.stringify(job, null, 2) + '\n');
      await file.sync();
    } catch (error) {
      await file.close();
      await rm(temp, { force: true });
      throw error;
    }
    await file.close();
    await rename(temp, path);
    await syncDir(this.dir);
  }

  async remove(id: string): Promise<void> {
    await rm(this.pathOf(id), { force: true });
  }

  /** Every record that parses; broken ones (a crash mid-write cannot make one) are skipped. */
  async readAll(): Promise<Job[]> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const jobs: Job[] = [];
    for (const name of names) {
      if (name.startsWith('.') && name.endsWith('.tmp')) {
        await rm(join(this.dir, name), { force: true });
        continue;
      }
      if (!name.endsWith('.json')) continue;
      try {
        const job = JSON.parse(await readFile(join(this.dir, name), 'utf8')) as Job;
        if (typeof job.id === 'string' && typeof job.state === 'string') jobs.push(job);
      } catch {
        // Unreadable record: not ours to guess at.
      }
    }
    return jobs;
  }

  private pathOf(id: string): string {
    return join(this.dir, `${id}.json`);
  }
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
