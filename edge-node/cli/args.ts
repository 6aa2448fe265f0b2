/** Minimal argument parsing on top of node:util's parseArgs, with usage errors that name the flag. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { VlmeshError } from '../../shared/errors.ts';

export class UsageError extends VlmeshError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

export function parse<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** Parses a TCP port flag. */
export function portArg(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`--port must be an integer 0..65535, got "${value}"`);
  return n;
}
