/**
 * `linear`: picks the linear kernel for the shape and the adapter, and splits weights larger than
 * one storage binding into row windows.
 *
 *   W [N, K] in one buffer                      y [M, N]
 *   ┌──────────────┐ rows 0 .. r1-1   ──────▶  columns 0 .. r1-1
 *   ├──────────────┤ rows r1 .. r2-1  ──────▶  columns r1 .. r2-1
 *   └──────────────┘ …                         (one dispatch per window, yOffset += r0)
 *
 * A window's first row must start at a byte offset that is a multiple of
 * `minStorageBufferOffsetAlignment` (for W and for the bias), so window heights are multiples of
 * that step.
 *
 * The weight is a plain tensor (f32/f16: `matmul-tiled`, `matmul-vec4`, `gemv`) or a q4
 * `QuantizedWeight` (`matmul-q4`, `gemv-q4`); `linear` dispatches on its kind. A q4 window cuts
 * codes, scales and bias at the same rows.
 */
import { ShapeError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { dtypeBytes } from '../../gpu/dtype.ts';
import type { ProgramCall } from '../../gpu/program.ts';
import type { LinearArgs } from './common.ts';
import { GEMV_MAX_M, gemv } from './gemv.ts';
import { gemvQ4 } from './gemv-q4.ts';
import { matmulQ4 } from './matmul-q4.ts';
import { matmulRows } from './matmul-rows.ts';
import { matmulTiled } from './matmul-tiled.ts';
import { matmulVec4, vec4Compatible } from './matmul-vec4.ts';
import { isQuantized, type LinearWeight, type Q4LinearArgs } from './q4.ts';

export type { LinearArgs } from './common.ts';
export { GEMV, GEMV_MAX_M, gemv } from './gemv.ts';
export { GEMV_Q4, gemvQ4, gemvQ4Lanes } from './gemv-q4.ts';
export { MATMUL_Q4, matmulQ4 } from './matmul-q4.ts';
export { MATMUL_ROWS, type MatmulRowsTile, matmulRows, matmulRowsSupported, matmulRowsTile } from './matmul-rows.ts';
export { MATMUL_TILED, matmulTiled } from './matmul-tiled.ts';
export { MATMUL_VEC4, matmulVec4, vec4Compatible } from './matmul-vec4.ts';
export { isQuantized, type LinearWeight, type Q4LinearArgs, QuantizedWeight } from './q4.ts';

export type LinearVariant = 'linear/matmul-tiled' | 'linear/matmul-vec4' | 'linear/matmul-rows' | 'linear/gemv';
/** Kernels for q4 weights. */
export type LinearQ4Variant = 'linear/matmul-q4' | 'linear/gemv-q4';

/** `LinearArgs` whose weight is a plain tensor or a q4 weight. */
export type AnyLinearArgs = Omit<LinearArgs, 'w'> & { w: LinearWeight };

function isQ4Args(a: AnyLinearArgs): a is Q4LinearArgs {
  return isQuantized(a.w);
}

/** The kernel `linear` uses for these arguments on this adapter. */
export function selectLinear(ctx: GpuContext, a: LinearArgs): LinearVariant;
export function selectLinear(ctx: GpuContext, a: AnyLinearArgs): LinearVariant | LinearQ4Variant;
export function selectLinear(ctx: GpuContext, a: AnyLinearArgs): LinearVariant | LinearQ4Variant {
  if (isQ4Args(a)) return a.M <= GEMV_MAX_M ? 'linear/gemv-q4' : 'linear/matmul-q4';
  if (!vec4Compatible(a)) return ctx.variants.linearFallback;
  if (a.M <= GEMV_MAX_M) return ctx.variants.linearDecode;
  return ctx.variants.linearPrefill;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** Rows per window so that each W (and bias) window fits one binding and starts aligned. */
export function windowRows(ctx: GpuContext, K: number, wBytes: number, hasBias: boolean): number {
  const align = ctx.caps.limits.minStorageBufferOffsetAlignment;
  const rowBytes = K * wBytes;
  let step = align / gcd(rowBytes, align);
  if (hasBias) {
    const bStep = align / gcd(wBytes, align);
    step = (step * bStep) / gcd(step, bStep);
  }
  const fit = Math.floor(ctx.caps.maxBindingBytes / rowBytes);
  const rows = Math.floor(fit / step) * step;
  if (rows < 1) {
    throw new ShapeError(`linear: one aligned window of ${step} weight rows of K=${K} does not fit one storage binding`);
  }
  return rows;
}

/** Rows per window of a q4 weight so that codes, scales (and bias) windows fit and start aligned. */
export function windowRowsQ4(ctx: GpuContext, K: number, groupSize: number, scaleBytes: number, hasBias: boolean): number {
  const align = ctx.caps.limits.minStorageBufferOffsetAlignment;
  const lcm = (a: number, b: number) => (a * b) / gcd(a, b);
  const codeRow = K / 2;
  const scaleRow = (K / groupSize) * scaleBytes;
  let step = lcm(align / gcd(codeRow, align), align / gcd(scaleRow, align));
  if (hasBias) step = lcm(step, align / gcd(scaleBytes, align));
  const fit = Math.floor(ctx.caps.maxBindingBytes / Math.max(codeRow, scaleRow));
  const rows = Math.floor(fit / step) * step;
  if (rows < 1) {
    throw new ShapeError(`linear: one aligned window of ${step} q4 weight rows of K=${K} does not fit one storage binding`);
  }
  return rows;
}

/**
 * y = x·Wᵀ (+ b), encoded into the context's batch. Handles any shape and any weight size; W is
 * a plain f32/f16 tensor or a q4 `QuantizedWeight`.
 *
 * @example
 * linear(ctx, { x, w: qProj, y: q, M: tokens, N: heads * headDim, K: hidden });
 */
export function linear(ctx: GpuContext, args: AnyLinearArgs, variant?: LinearVariant | LinearQ4Variant): void {
  for (const call of linearCalls(ctx, args, variant)) ctx.run(call);
}

function linearCallsQ4(ctx: GpuContext, args: Q4LinearArgs, variant?: LinearVariant | LinearQ4Variant): ProgramCall[] {
  const v = variant ?? selectLinear(ctx, args);
  if (v !== 'linear/gemv-q4' && v !== 'linear/matmul-q4') {
    throw new ShapeError(`linear: weight "${args.w.label}" is q4; ${v} takes f32/f16 weights (use linear/gemv-q4 or linear/matmul-q4)`);
  }
  const factory = v === 'linear/gemv-q4' ? gemvQ4 : matmulQ4;
  const base = args.wRowOffset ?? 0;
  const rows = windowRowsQ4(ctx, args.K, args.w.groupSize, dtypeBytes(args.w.scaleDtype), args.bias !== undefined);
  if (base === 0 && args.N <= rows) return [factory(ctx, args)];
  const calls: ProgramCall[] = [];
  const yOffset = args.yOffset ?? 0;
  for (let r0 = 0; r0 < args.N; r0 += rows) {
    const n = Math.min(rows, args.N - r0);
    calls.push(factory(ctx, { ...args, N: n, ldy: args.ldy ?? args.N, wRowOffset: base + r0, yOffset: yOffset + r0 }));
  }
  return calls;
}

/** The dispatches `linear` would encode (one per weight window). */
export function linearCalls(ctx: GpuContext, anyArgs: AnyLinearArgs, variant?: LinearVariant | LinearQ4Variant): ProgramCall[] {
  const w = anyArgs.w;
  if (isQuantized(w)) return linearCallsQ4(ctx, { ...anyArgs, w }, variant);
  const args: LinearArgs = { ...anyArgs, w };
  if (variant === 'linear/gemv-q4' || variant === 'linear/matmul-q4') {
    throw new ShapeError(`linear: ${variant} needs a q4 weight, "${args.w.label}" is ${args.w.dtype}`);
  }
  const v = variant ?? selectLinear(ctx, args);
  const factory = v === 'linear/gemv' ? gemv : v === 'linear/matmul-vec4' ? matmulVec4 : v === 'linear/matmul-rows' ? matmulRows : matmulTiled;
  const base = args.wRowOffset ?? 0;
  const rows = windowRows(ctx, args.K, dtypeBytes(args.w.dtype), args.bias !== undefined);
  if (base === 0 && args.N <= rows) return [factory(ctx, args)];
  const calls: ProgramCall[] = [];
  const yOffset = args.yOffset ?? 0;
  for (let r0 = 0; r0 < args.N; r0 += rows) {
    const n = Math.min(rows, args.N - r0);
    calls.push(
      factory(ctx, { ...args, N: n, ldy: args.ldy ?? args.N, wRowOffset: base + r0, yOffset: yOffset + r0 }),
    );
  }
  return calls;
}
