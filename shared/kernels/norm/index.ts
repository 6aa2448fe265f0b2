/**
 * Row normalisations: Qwen3 RMSNorm (text model, q_norm/k_norm) and LayerNorm (vision tower).
 * The `…Call` factories return one dispatch; `rmsNorm` / `layerNorm` encode it.
 */
import type { GpuContext } from '../../gpu/context.ts';
import { type LayerNormArgs, layerNormCall } from './layernorm.ts';
import { type RmsNormArgs, rmsNormCall } from './rmsnorm.ts';

export type { RowNormArgs } from './common.ts';
export { LAYERNORM, type LayerNormArgs, layerNormCall } from './layernorm.ts';
export { RMSNORM, type RmsNormArgs, rmsNormCall } from './rmsnorm.ts';

/**
 * RMSNorm encoded into the context's batch. Omit `y` to normalise in place.
 *
 * @example
 * rmsNorm(ctx, { x: hidden, y: normed, weight: inputLayernorm, rows: T, n: hidden, eps: 1e-6 });
 */
export function rmsNorm(ctx: GpuContext, args: RmsNormArgs): void {
  ctx.run(rmsNormCall(ctx, args));
}

/**
 * LayerNorm encoded into the context's batch. Omit `y` to normalise in place.
 *
 * @example
 * layerNorm(ctx, { x, y: h, weight: norm1W, bias: norm1B, rows: P, n: 1024, eps: 1e-6 });
 */
export function layerNorm(ctx: GpuContext, args: LayerNormArgs): void {
  ctx.run(layerNormCall(ctx, args));
}
