/** Element types a tensor can hold on the GPU. */
export type DType = 'f32' | 'f16' | 'u32' | 'i32';

/** Bytes per element. */
export function dtypeBytes(dtype: DType): number {
  return dtype === 'f16' ? 2 : 4;
}

/** The WGSL scalar type of a dtype. */
export function wgslType(dtype: DType): string {
  return dtype;
}

/** Typed array used on the host for a dtype (f16 travels as raw 16-bit patterns). */
export type HostArray<D extends DType> = D extends 'f32'
  ? Float32Array
  : D extends 'f16'
    ? Uint16Array
    : D extends 'u32'
      ? Uint32Array
      : Int32Array;

export type AnyHostArray = Float32Array | Uint16Array | Uint32Array | Int32Array;

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
