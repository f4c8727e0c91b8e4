import { randomUUID } from 'node:crypto';
import { invalid } from './errors.js';

export type VmId = string;

export function newId(): string {
  return randomUUID();
}

const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isId(text: string): boolean {
  return UUID_PATTERN.test(text);
}

/** Names of VMs, switches and images: what a person types and a folder can hold. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

export function checkName(name: string, field = 'name'): string {
  if (!NAME_PATTERN.test(name)) {
    throw invalid(
      field,
      `${field} "${name}" is not a valid name.`,
      'Use 1 to 63 letters, digits, ".", "_" or "-", starting with a letter or digit.',
    );
  }
  return name;
}
