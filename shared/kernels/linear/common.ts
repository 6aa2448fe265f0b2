/**
 * Shared pieces of the three linear kernels: the argument type, shape validation and uniforms.
 */
import { ShapeError } from '../../errors.ts';
import { expectTensor, type Tensor } from '../../gpu/tensor.ts';
import type { Uniform } from '../../gpu/program.ts';

export interface LinearArgs {
  /** Input rows: element (m, k) at `xOffset + m·ldx + k`. f32. */
  x: Tensor;
  /** Weight `[N, K]` (Hugging Face `[out, in]`), f32 or f16. May be a row window (see `linear`). */
  w: Tensor;
  /** Optional bias `[N]`, same dtype as `w`. */
  bias?: Tensor;
  /** Output: element (m, n) at `yOffset + m·ldy + n`. f32. */
  y: Tensor;
  M: number;
  N: number;
  K: number;
  ldx?: number;
  ldy?: number;
  xOffset?: number;
  yOffset?: number;
  /** First weight row (and bias element) this call reads; used for windows of big weights. */
  wRowOffset?: number;
}

export interface ResolvedLinear extends Required<Omit<LinearArgs, 'bias'>> {
  bias?: Tensor;
}

/** The x/y side of resolved linear arguments (shared with the q4 kernels). */
export type ResolvedLinearRows = Required<Omit<LinearArgs, 'bias' | 'w'>>;

/** Checks M, N, K, strides and that x and y hold the rows they are asked for. */
export function checkLinearRows(name: string, r: ResolvedLinearRows): void {
  for (const [k, v] of Object.entries({ M: r.M, N: r.N, K: r.K })) {
    if (!Number.isInteger(v) || v <= 0) throw new ShapeError(`${name}: ${k} must be a positive integer, got ${v}`);
  }
  expectTensor(r.x, `${name} x`, { dtype: 'f32' });
  expectTensor(r.y, `${name} y`, { dtype: 'f32' });
  if (r.ldx < r.K) throw new ShapeError(`${name}: ldx ${r.ldx} < K ${r.K}`);
  if (r.ldy < r.N) throw new ShapeError(`${name}: ldy ${r.ldy} < N ${r.N}`);
  if (r.xOffset + (r.M - 1) * r.ldx + r.K > r.x.size) {
    throw new ShapeError(`${name}: x "${r.x.label}" has ${r.x.size} elements, needs ${r.xOffset + (r.M - 1) * r.ldx + r.K}`);
  }
  if (r.yOffset + (r.M - 1) * r.ldy + r.N > r.y.size) {
    throw new ShapeError(`${name}: y "${r.y.label}" has ${r.y.size} elements, needs ${r.yOffset + (r.M - 1) * r.ldy + r.N}`);
  }
}

export function resolveLinear(name: string, a: LinearArgs): ResolvedLinear {
  const r: ResolvedLinear = {
    ldx: a.K,
    ldy: a.N,
    xOffset: 0,
    yOffset: 0,
    wRowOffset: 0,
    ...a,
  };
  for (const [k, v] of Object.entries({ M: r.M, N: r.N, K: r.K })) {
    if (!Number.isInteger(v) || v <= 0) throw new ShapeError(`${name}: ${k} must be a positive integer, got ${v}`);
  }
  expectTensor(r.x, `${name} x`, { dtype: 'f32' });
  expectTensor(r.y, `${name} y`, { dtype: 'f32' });
  expectTensor(r.w, `${name} w`, { dtype: ['f32', 'f16'], rank: 2 });
  if (r.w.shape[1] !== r.K || r.w.shape[0] < r.wRowOffset + r.N) {
    throw new ShapeError(
      `${name}: weight "${r.w.label}" must have shape [≥${r.wRowOffset + r.N}, ${r.K}] (HF [out, in]), got [${r.w.shape}]`,
    );
  }
  if (r.bias) {
    expectTensor(r.bias, `${name} bias`, { dtype: r.w.dtype, rank: 1 });
    if (r.bias.shape[0] < r.wRowOffset + r.N) {
      throw new ShapeError(`${name}: bias "${r.bias.label}" must have ≥${r.wRowOffset + r.N} elements, got [${r.bias.shape}]`);
    }
  }
  if (r.ldx < r.K) throw new ShapeError(`${name}: ldx ${r.ldx} < K ${r.K}`);
  if (r.ldy < r.N) throw new ShapeError(`${name}: ldy ${r.ldy} < N ${r.N}`);
  if (r.xOffset + (r.M - 1) * r.ldx + r.K > r.x.size) {
    throw new ShapeError(`${name}: x "${r.x.label}" has ${r.x.size} elements, needs ${r.xOffset + (r.M - 1) * r.ldx + r.K}`);
  }
  if (r.yOffset + (r.M - 1) * r.ldy + r.N > r.y.size) {
    throw new ShapeError(`${name}: y "${r.y.label}" has ${r.y.size} elements, needs ${r.yOffset + (r.M - 1) * r.ldy + r.N}`);
  }
  return r;
}

export function linearUniforms(r: ResolvedLinearRows): Uniform[] {
  return [
    { u32: r.M },
    { u32: r.N },
    { u32: r.K },
    { u32: r.ldx },
    { u32: r.ldy },
    { u32: r.xOffset },
    { u32: r.yOffset },
    { u32: 0 },
  ];
}

/** The weight rows [wRowOffset, wRowOffset+N) and matching bias elements as binding windows. */
export function weightWindows(r: ResolvedLinear) {
  const w = r.w.view(r.wRowOffset * r.K, r.N * r.K);
  const bias = r.bias ? r.bias.view(r.wRowOffset, r.N) : undefined;
  return { w, bias };
}
