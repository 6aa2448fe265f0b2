/**
 * Header lines that factories prepend to a kernel file: the compile-time facts a kernel is
 * specialised on. These are the only things that may differ between pipelines of one kernel,
 * and each one must appear in that kernel's cache key.
 */
import type { DType } from '../gpu/dtype.ts';

/** `enable f16;` when any of the dtypes is f16 (must be the module's first directive). */
export function enables(...dtypes: readonly DType[]): string {
  return dtypes.includes('f16') ? 'enable f16;' : '';
}

/** `alias NAME = dtype;` */
export function alias(name: string, dtype: DType): string {
  return `alias ${name} = ${dtype};`;
}

/** `const NAME: u32 = value;` / `const NAME: bool = value;` */
export function constU32(name: string, value: number): string {
  if (!Number.isInteger(value) || value < 0) throw new Error(`constU32 ${name}: ${value} is not a u32`);
  return `const ${name}: u32 = ${value}u;`;
}

export function constBool(name: string, value: boolean): string {
  return `const ${name}: bool = ${value};`;
}

export function constF32(name: string, value: number): string {
  const s = Number.isInteger(value) ? `${value}.0` : String(value);
  return `const ${name}: f32 = ${s};`;
}
