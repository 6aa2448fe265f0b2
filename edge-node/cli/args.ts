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

/** Weight modes `--dtype` takes (`q4`: int4 decoder projections, f16/f32 for the rest). */
export const MODEL_DTYPES = ['f32', 'f16', 'q4'] as const;

/** Parses `--dtype f32|f16|q4` (undefined stays undefined: the adapter's default). */
export function dtypeArg(value: string | undefined): (typeof MODEL_DTYPES)[number] | undefined {
  if (value === undefined) return undefined;
  const found = MODEL_DTYPES.find((d) => d === value);
  if (!found) throw new UsageError(`--dtype must be ${MODEL_DTYPES.join(', ')}, got "${value}"`);
  return found;
}
