/**
 * visord: the composition root. Builds the VM service, the job manager and the HTTP app, recovers
 * what a previous daemon left, and listens on $VISOR_RUN/visord.sock (and TCP with --listen).
 * SIGTERM/SIGINT close the sockets; the VMs keep running (they outlive the daemon).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { asVisorError } from '../core/index.js';
import { resolvePaths } from '../api/index.js';
import { JobManager } from '../jobs/index.js';
import { createVmService } from '../vms/index.js';
import { getHostInfo } from '../host/index.js';
import { createDaemon } from './daemon.js';

const USAGE = `Usage: visord [--listen HOST:PORT] [--debug]

  --listen HOST:PORT  also serve the API (and the web Manager) on TCP, with the bearer token in
                      $VISOR_HOME/api-token
  --debug             one log line per request on stderr
Environment: VISOR_HOME, VISOR_RUN select the instance.`;

function packageVersion(): string {
  try {
    const text = readFileSync(new URL('../../../package.json', import.meta.url), 'utf8');
    return (JSON.parse(text) as { version?: string }).version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** web/ beside the checkout: dist/src/daemon → ../../../web, src/daemon → ../../web. */
function webDir(): string | null {
  const here = fileURLToPath(new URL('.', import.meta.url));
  for (const up of ['../../../web', '../../web']) {
    const dir = join(here, up);
    if (existsSync(join(dir, 'index.html'))) return dir;
  }
  return null;
}

/**
 * Read-only image folders searched after $VISOR_HOME/images: $VISOR_IMAGE_PATH (colon-separated),
 * else the images this checkout built (guests/out).
 */
function imageFolders(): string[] {
  const fromEnv = process.env.VISOR_IMAGE_PATH;
  if (fromEnv !== undefined) return fromEnv.split(':').filter(Boolean);
  const here = fileURLToPath(new URL('.', import.meta.url));
  return ['../../../guests/out', '../../guests/out'].map((up) => join(here, up)).filter((dir) => existsSync(dir)).slice(0, 1);
}

export async function main(argv: readonly string[]): Promise<number> {
  let values: { listen?: string; debug?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: { listen: { type: 'string' }, debug: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }));
  } catch (error) {
    process.stderr.write(`error: ${(error as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const paths = resolvePaths();
  const version = packageVersion();
  const jobs = new JobManager({ dir: join(paths.home, 'jobs') });
  const vmService = await createVmService({ home: paths.home, run: paths.run, imageFolders: imageFolders() });
  const daemon = createDaemon({
    home: paths.home,
    run: paths.run,
    vmService,
    jobs,
    hostInfo: () => getHostInfo({ cacheDir: paths.run }),
    listen: values.listen,
    version,
    webDir: webDir(),
    debug: values.debug ?? process.env.VISOR_LOG === 'debug',
  });
  try {
    await daemon.start();
  } catch (error) {
    const e = asVisorError(error);
    process.stderr.write(`error: ${e.message}\n${e.hint ? `hint: ${e.hint}\n` : ''}`);
    await daemon.close().catch(() => undefined);
    return e.kind === 'conflict' ? 4 : e.kind === 'invalid' ? 2 : 1;
  }
  const tcp = daemon.tcpAddress ? ` and http://${daemon.tcpAddress.host}:${daemon.tcpAddress.port}` : '';
  process.stderr.write(`visord ${version} (pid ${process.pid}) listening on ${daemon.socketPath}${tcp}\n`);
  return new Promise<number>((resolve) => {
    const stop = (signal: string): void => {
      process.stderr.write(`visord: ${signal}, closing (VMs keep running)\n`);
      daemon.close().then(
        () => resolve(0),
        (error: unknown) => {
          process.stderr.write(`visord: close failed: ${asVisorError(error).message}\n`);
          resolve(1);
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}

const isEntry = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isEntry) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
