import type { IncomingMessage } from 'node:http';
import { VisorError } from '../core/index.js';

/**
 * Reads a JSON request body of at most `limit` bytes. An empty body is `undefined`; a body that
 * is not `application/json`, too large, or not JSON is the caller's error (`invalid`).
 */
export async function readJsonBody(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > limit) throw tooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw tooLarge(limit);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return undefined;
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    throw new VisorError('invalid', 'unsupported-media-type', `The body must be application/json: current type is "${type || 'none'}".`, {
      hint: 'Send Content-Type: application/json.',
    });
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new VisorError('invalid', 'invalid-json', `The body is not valid JSON: ${(error as Error).message}.`, { cause: error });
  }
}

function tooLarge(limit: number): VisorError {
  return new VisorError('invalid', 'body-too-large', `The body is larger than ${limit} bytes.`);
}
