import { open, readFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';

/**
 * The bearer token of TCP clients: generated once into `$VISOR_HOME/api-token` (mode 0600) and
 * read from there afterwards.
 */
export async function ensureApiToken(path: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const token = randomBytes(32).toString('base64url');
  try {
    const file = await open(path, 'wx', 0o600);
    try {
      await file.writeFile(`${token}\n`);
      await file.sync();
    } finally {
      await file.close();
    }
    return token;
  } catch (error) {
    // Another daemon wrote it first: use theirs.
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return (await readFile(path, 'utf8')).trim();
    throw error;
  }
}

/** WebSocket clients in browsers cannot send headers; they offer this subprotocol prefix. */
export const BEARER_PROTOCOL_PREFIX = 'visor.bearer.';

/**
 * Whether the request carries the token, in `Authorization: Bearer TOKEN` or (WebSockets) the
 * subprotocol `visor.bearer.TOKEN`. Compared in constant time (hashes of equal length).
 */
export function hasToken(headers: { authorization?: string; 'sec-websocket-protocol'?: string }, token: string): boolean {
  const candidates: string[] = [];
  const auth = headers.authorization;
  if (auth && /^bearer /i.test(auth)) candidates.push(auth.slice(7).trim());
  for (const protocol of (headers['sec-websocket-protocol'] ?? '').split(',')) {
    const p = protocol.trim();
    if (p.startsWith(BEARER_PROTOCOL_PREFIX)) candidates.push(p.slice(BEARER_PROTOCOL_PREFIX.length));
  }
  const expected = digest(token);
  let ok = false;
  for (const candidate of candidates) ok = timingSafeEqual(digest(candidate), expected) || ok;
  return ok;
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}
