/**
 * The program contract (one kernel = one `.wgsl` file + one factory in `shared/kernels/`).
 *
 * A factory validates its tensors, then returns a `ProgramCall`: the compile-time facts
 * (`name`, `cacheKey`, `source`) that pick a pipeline, and the run-time facts (bindings,
 * uniforms, workgroup counts) of one dispatch. The pipeline cache keys on `name|cacheKey` only,
 * so shapes and positions must travel in uniforms, never in the source.
 */
import type { Tensor, TensorView } from './tensor.ts';

/** How a storage binding is accessed by the kernel. */
export type Access = 'read' | 'read_write';

/** One scalar field of the kernel's `Params` uniform struct, in declaration order. */
export type Uniform = { u32: number } | { i32: number } | { f32: number };

export interface ProgramInfo {
  /** Kernel name, e.g. `linear/matmul-vec4`. Labels pipelines and buffers. */
  name: string;
  /** Compile-time facts only (dtypes, workgroup size, head_dim…), never shapes. */
  cacheKey: string;
  /** Assembles the full WGSL text (header constants + includes + the kernel file). */
  source: () => string;
  /** Access mode of each storage binding, in binding order. The uniform struct comes after. */
  access: readonly Access[];
}

export interface ProgramCall {
  info: ProgramInfo;
  /** Storage bindings in binding order (`@binding(0)`…). */
  bindings: readonly (Tensor | TensorView)[];
  /** Fields of the `Params` uniform at `@binding(bindings.length)`; omit when the kernel has none. */
  uniforms?: readonly Uniform[];
  /** Number of workgroups in x, y, z. */
  workgroups: readonly [number, number, number];
}

/** Packs uniform fields (all 4-byte scalars) into a 16-byte-aligned buffer. */
export function packUniforms(fields: readonly Uniform[]): ArrayBuffer {
  const bytes = Math.max(16, Math.ceil((fields.length * 4) / 16) * 16);
  const buf = new ArrayBuffer(bytes);
  const view = new DataView(buf);
  fields.forEach((f, i) => {
    if ('u32' in f) view.setUint32(i * 4, f.u32 >>> 0, true);
    else if ('i32' in f) view.setInt32(i * 4, f.i32 | 0, true);
    else view.setFloat32(i * 4, f.f32, true);
  });
  return buf;
}

/** Joins WGSL fragments (header lines, common includes, the kernel file) into one module. */
export function assembleWgsl(...parts: readonly string[]): string {
  return parts.filter((p) => p.length > 0).join('\n');
}

/**
 * Splits a 1-D workgroup count that may exceed the per-dimension limit into (x, y).
 * Kernels recover the flat index as `wid.x + wid.y * num_workgroups.x`.
 */
export function splitWorkgroups(count: number, maxPerDim = 65535): [number, number, number] {
  if (count <= maxPerDim) return [Math.max(1, count), 1, 1];
  const y = Math.ceil(count / maxPerDim);
  return [Math.ceil(count / y), y, 1];
}
