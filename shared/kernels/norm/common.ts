/**
 * Shared pieces of the row-normalisation kernels (RMSNorm, LayerNorm): argument type, validation,
 * uniforms and the workgroup size.
 */
import { ShapeError, UnsupportedAdapterError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import type { DType } from '../../gpu/dtype.ts';
import type { Uniform } from '../../gpu/program.ts';
import { expectTensor, type Tensor } from '../../gpu/tensor.ts';

export interface RowNormArgs {
  /** Input rows: element (r, c) at `xOffset + r·ldx + c`. f32. */
  x: Tensor;
  /**
   * Output: element (r, c) at `yOffset + r·ldy + c`. f32. Omit it, or pass `x` itself (with the
   * same offset and stride), to normalise in place.
   */
  y?: Tensor;
  rows: number;
  /** Row length: the normalised dimension. */
  n: number;
  /** Added to the variance (Qwen3 text and vision: 1e-6). */
  eps: number;
  ldx?: number;
  ldy?: number;
  xOffset?: number;
  yOffset?: number;
}

export interface ResolvedRowNorm {
  x: Tensor;
  y: Tensor;
  inPlace: boolean;
  rows: number;
  n: number;
  eps: number;
  ldx: number;
  ldy: number;
  xOffset: number;
  yOffset: number;
}

function nonNegativeInt(name: string, key: string, v: number): void {
  if (!Number.isInteger(v) || v < 0) throw new ShapeError(`${name}: ${key} must be a non-negative integer, got ${v}`);
}

/** Validates the row arguments; `y` absent or on x's buffer means in place. */
export function resolveRowNorm(name: string, a: RowNormArgs): ResolvedRowNorm {
  const inPlace = a.y === undefined || a.y.buffer === a.x.buffer;
  const ldx = a.ldx ?? a.n;
  const xOffset = a.xOffset ?? 0;
  const r: ResolvedRowNorm = {
    x: a.x,
    y: a.y ?? a.x,
    inPlace,
    rows: a.rows,
    n: a.n,
    eps: a.eps,
    ldx,
    xOffset,
    ldy: a.ldy ?? (inPlace ? ldx : a.n),
    yOffset: a.yOffset ?? (inPlace ? xOffset : 0),
  };
  for (const [k, v] of Object.entries({ rows: r.rows, n: r.n })) {
    if (!Number.isInteger(v) || v <= 0) throw new ShapeError(`${name}: ${k} must be a positive integer, got ${v}`);
  }
  for (const [k, v] of Object.entries({ ldx: r.ldx, ldy: r.ldy, xOffset: r.xOffset, yOffset: r.yOffset })) {
    nonNegativeInt(name, k, v);
  }
  if (!Number.isFinite(r.eps) || r.eps < 0) throw new ShapeError(`${name}: eps must be a finite number ≥ 0, got ${r.eps}`);
  expectTensor(r.x, `${name} x`, { dtype: 'f32' });
  expectTensor(r.y, `${name} y`, { dtype: 'f32' });
  if (r.ldx < r.n) throw new ShapeError(`${name}: ldx ${r.ldx} < n ${r.n}`);
  if (r.ldy < r.n) throw new ShapeError(`${name}: ldy ${r.ldy} < n ${r.n}`);
  const xNeed = r.xOffset + (r.rows - 1) * r.ldx + r.n;
  if (xNeed > r.x.size) throw new ShapeError(`${name}: x "${r.x.label}" has ${r.x.size} elements, needs ${xNeed}`);
  const yNeed = r.yOffset + (r.rows - 1) * r.ldy + r.n;
  if (yNeed > r.y.size) throw new ShapeError(`${name}: y "${r.y.label}" has ${r.y.size} elements, needs ${yNeed}`);
  if (inPlace && (r.ldy !== r.ldx || r.yOffset !== r.xOffset)) {
    // Another workgroup could overwrite a row before it is read.
    throw new ShapeError(
      `${name}: y shares x's buffer, so it must use x's offset and stride (in place); got xOffset ${r.xOffset}/ldx ${r.ldx}, yOffset ${r.yOffset}/ldy ${r.ldy}`,
    );
  }
  return r;
}

/** Checks a per-column parameter vector (weight or bias) `[n]`; f16 needs shader-f16. */
export function expectParamVector(
  ctx: GpuContext,
  name: string,
  what: string,
  t: Tensor,
  n: number,
  dtype?: DType,
): void {
  expectTensor(t, `${name} ${what} ("${t.label}")`, { dtype: dtype ?? ['f32', 'f16'], shape: [n] });
  if (t.dtype === 'f16' && !ctx.caps.f16) {
    throw new UnsupportedAdapterError(`${name}: ${what} "${t.label}" is f16 but this adapter has no shader-f16; upload it as f32`);
  }
}

/** Threads per workgroup (one workgroup per row): small rows such as head_dim use fewer. */
export function rowNormWorkgroupSize(n: number): number {
  return n <= 256 ? 64 : n <= 1024 ? 128 : 256;
}

export function rowNormUniforms(r: ResolvedRowNorm): Uniform[] {
  return [
    { u32: r.rows },
    { u32: r.n },
    { u32: r.ldx },
    { u32: r.ldy },
    { u32: r.xOffset },
    { u32: r.yOffset },
    { f32: r.eps },
    { u32: 0 },
  ];
}
