import type { z } from 'zod';
import { VisorError } from './errors.js';

/**
 * Turns a zod failure into one VisorError that names the field, quotes the value and says what
 * is allowed: `processors.count must be at most 32: current value is 100000.`
 */
export function fromZodError(error: z.ZodError, input: unknown, prefix = ''): VisorError {
  const issue = error.issues[0];
  if (!issue) return new VisorError('invalid', 'invalid-value', 'The input is not valid.');
  const path = [prefix, ...issue.path.map(String)].filter(Boolean).join('.');
  let message: string;
  if (issue.code === 'unrecognized_keys') {
    const keys = issue.keys.map((k) => `"${k}"`).join(', ');
    const where = path ? ` in ${path}` : '';
    message = `Unknown field ${keys}${where}.`;
    return new VisorError('invalid', 'unknown-field', message, {
      field: [path, issue.keys[0]].filter(Boolean).join('.'),
      hint: 'Remove it, or check its spelling.',
    });
  }
  const value = valueAt(input, issue.path);
  const quoted = value === undefined ? 'it is missing' : `current value is ${JSON.stringify(value)}`;
  message = `${path || 'The input'} ${lowerFirst(issue.message)}: ${quoted}.`;
  return new VisorError('invalid', 'invalid-value', message, { field: path || undefined });
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let current: unknown = input;
  for (const key of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

function lowerFirst(text: string): string {
  const t = text.replace(/^Invalid input: /, '');
  return /^[A-Z][a-z]/.test(t) ? t[0]!.toLowerCase() + t.slice(1) : t;
}

/** Parses with a schema, throwing the VisorError above on failure. */
export function parseOrThrow<T extends z.ZodType>(schema: T, input: unknown, prefix = ''): z.infer<T> {
  const result = schema.safeParse(input);
  if (!result.success) throw fromZodError(result.error, input, prefix);
  return result.data;
}
