import { readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { VisorError } from '../core/index.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * A file of the web Manager: `/` is web/index.html, `/web/NAME` the files beside it (one level,
 * plain names only, so no path leaves the folder). The page holds no data: it calls the API with
 * the bearer token the user gives it.
 */
export async function serveWebFile(dir: string, name: string): Promise<{ body: Buffer; type: string }> {
  const type = TYPES[extname(name)];
  if (!FILE_NAME.test(name) || !type) throw new VisorError('not-found', 'file-not-found', `No file /web/${name}.`);
  try {
    return { body: await readFile(join(dir, name)), type };
  } catch {
    throw new VisorError('not-found', 'file-not-found', `No file /web/${name}.`);
  }
}
