/**
 * Elementwise kernels: GELU (tanh approximation and exact erf), SwiGLU silu(gate)·up, and the
 * residual add (out-of-place and in-place). The `…Call` factories return one dispatch; the
 * functions without the suffix encode it.
 */
import type { GpuContext } from '../../gpu/context.ts';
import { type AddArgs, type AddInPlaceArgs, addCall, addInPlaceCall } from './add.ts';
import type { UnaryArgs } from './common.ts';
import { geluErfCall } from './gelu-erf.ts';
import { geluTanhCall } from './gelu-tanh.ts';
import { type SiluMulArgs, siluMulCall } from './silu-mul.ts';

export { ADD, ADD_INPLACE, type AddArgs, type AddInPlaceArgs, addCall, addInPlaceCall } from './add.ts';
export { ELEMENTWISE_WG, type UnaryArgs } from './common.ts';
export { GELU_ERF, geluErfCall } from './gelu-erf.ts';
export { GELU_TANH, geluTanhCall } from './gelu-tanh.ts';
export { SILU_MUL, type SiluMulArgs, siluMulCall } from './silu-mul.ts';

/** Which GELU, named as torch's `approximate` argument. */
export enum GeluApproximation {
  /** `gelu_pytorch_tanh` (ViT MLP). */
  Tanh = 'tanh',
  /** Exact, with erf (patch merger, DeepStack mergers). */
  None = 'none',
}

/**
 * GELU encoded into the context's batch; omit `y` for in place.
 *
 * @example
 * gelu(ctx, { x: fc1Out }, GeluApproximation.Tanh);
 */
export function gelu(ctx: GpuContext, args: UnaryArgs, approximate: GeluApproximation): void {
  ctx.run(approximate === GeluApproximation.Tanh ? geluTanhCall(ctx, args) : geluErfCall(ctx, args));
}

/** GELU, tanh approximation, encoded into the context's batch; omit `y` for in place. */
export function geluTanh(ctx: GpuContext, args: UnaryArgs): void {
  ctx.run(geluTanhCall(ctx, args));
}

/** Exact GELU (erf), encoded into the context's batch; omit `y` for in place. */
export function geluErf(ctx: GpuContext, args: UnaryArgs): void {
  ctx.run(geluErfCall(ctx, args));
}

/**
 * out = silu(gate)·up, encoded into the context's batch.
 *
 * @example
 * siluMul(ctx, { gate, up, out: act });
 */
export function siluMul(ctx: GpuContext, args: SiluMulArgs): void {
  ctx.run(siluMulCall(ctx, args));
}

/**
 * out = a + b (or a += b without `out`), encoded into the context's batch.
 *
 * @example
 * add(ctx, { a: hidden, b: mlpOut }); // hidden += mlpOut
 */
export function add(ctx: GpuContext, args: AddArgs): void {
  ctx.run(addCall(ctx, args));
}

/** a += b, encoded into the context's batch. */
export function addInPlace(ctx: GpuContext, args: AddInPlaceArgs): void {
  ctx.run(addInPlaceCall(ctx, args));
}
