import { jobResult, type Job, type VisorClient } from '../api/index.js';

const BAR_WIDTH = 30;

/**
 * Follows a job to its end with a progress bar on stderr (a TTY) or plain lines (otherwise), and
 * answers its result or throws its error. Ctrl-C cancels the job (the daemon says when it let
 * go); a second Ctrl-C leaves at once with 130, the job going on without us. `accepted` may be
 * the request still in flight (it waits up to a second for quick jobs): a Ctrl-C then cancels
 * the job as soon as its id is known.
 */
export async function followJob<T>(client: VisorClient, accepted: Job | Promise<Job>, options: { quiet?: boolean } = {}): Promise<T> {
  const tty = process.stderr.isTTY === true && !options.quiet;
  let lastLine = '';
  let drawn = false;
  const show = (update: Job): void => {
    if (options.quiet) return;
    const percent = Math.round(update.progress * 100);
    const what = update.message ?? update.state;
    if (tty) {
      const filled = Math.round(update.progress * BAR_WIDTH);
      const bar = `${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}`;
      const width = process.stderr.columns ?? 80;
      const line = `${label(update)} [${bar}] ${String(percent).padStart(3)}% ${what}`.slice(0, width - 1);
      process.stderr.write(`\r\x1b[2K${line}`);
      drawn = true;
    } else if (update.state === 'running' && update.message && update.message !== lastLine) {
      // Plain lines for logs: one per step, not per percent; the outcome is the command's to say.
      process.stderr.write(`${label(update)}: ${update.message}\n`);
      lastLine = update.message;
    }
  };

  let job: Job | null = null;
  let interrupts = 0;
  const cancel = (id: string): void => {
    process.stderr.write(`${drawn ? '\n' : ''}Cancelling job ${id} (Ctrl-C again to leave it running)...\n`);
    client.cancelJob(id).catch((error: unknown) => {
      process.stderr.write(`Could not cancel: ${(error as Error).message}\n`);
    });
  };
  const onInterrupt = (): void => {
    interrupts += 1;
    if (interrupts > 1) {
      if (drawn) process.stderr.write('\n');
      process.stderr.write(job ? `Left job ${job.id} running; see "visor job show ${job.id}".\n` : 'Left; see "visor job list".\n');
      process.exit(130);
    }
    if (job) cancel(job.id);
  };
  process.on('SIGINT', onInterrupt);
  try {
    job = await accepted;
    // A Ctrl-C while the request was in flight: the job is now known, and cancelled unless done.
    if (interrupts > 0 && (job.state === 'queued' || job.state === 'running')) cancel(job.id);
    const done = await client.waitForJob(job, { onUpdate: show });
    if (drawn) process.stderr.write('\n');
    return jobResult<T>(done);
  } finally {
    process.off('SIGINT', onInterrupt);
  }
}

function label(job: Job): string {
  return `${job.kind.replace(/^vm-/, '')} ${job.target}`;
}
