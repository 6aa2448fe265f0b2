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
 */
import { ShapeError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { dtypeBytes } from '../../gpu/dtype.ts';
import type { ProgramCall } from '../../gpu/program.ts';
import type { LinearArgs } from './common.ts';
import { GEMV_MAX_M, gemv } from './gemv.ts';
import { matmulTiled } from './matmul-tiled.ts';
import { matmulVec4, vec4Compatible } from './matmul-vec4.ts';

export type { LinearArgs } from './common.ts';
export { GEMV, GEMV_MAX_M, gemv } from './gemv.ts';
export { MATMUL_TILED, matmulTiled } from './matmul-tiled.ts';
export { MATMUL_VEC4, matmulVec4, vec4Compatible } from './matmul-vec4.ts';

export type LinearVariant = 'linear/matmul-tiled' | 'linear/matmul-vec4' | 'linear/gemv';

/** The kernel `linear` uses for these arguments on this adapter. */
export function selectLinear(ctx: GpuContext, a: LinearArgs): LinearVariant {
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

/**
 * y = x·Wᵀ (+ b), encoded into the context's batch. Handles any shape and any weight size.
 *
 * @example
 * linear(ctx, { x, w: qProj, y: q, M: tokens, N: heads * headDim, K: hidden });
 */
export function linear(ctx: GpuContext, args: LinearArgs, variant?: LinearVariant): void {
  for (const call of linearCalls(ctx, args, variant)) ctx.run(call);
}

/** The dispatches `linear` would encode (one per weight window). */
export function linearCalls(ctx: GpuContext, args: LinearArgs, variant?: LinearVariant): ProgramCall[] {
  const v = variant ?? selectLinear(ctx, args);
  const factory = v === 'linear/gemv' ? gemv : v === 'linear/matmul-vec4' ? matmulVec4 : matmulTiled;
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
