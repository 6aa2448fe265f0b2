/**
 * Rotary embeddings. One kernel (`rope/rotary`) serves the three schemes; `RopeMode` picks the
 * per-pair tables. `Rope` keeps the tables of one mode on the GPU.
 */
import type { GpuContext } from '../../gpu/context.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import { rotary } from './rotary.ts';
import { type RopeMode, ropeTables } from './tables.ts';

export { ROTARY, type RotaryArgs, rotary } from './rotary.ts';
export { invFreqF32, RopeMode, type RopeTables, ropeTables, visionPatchPositions } from './tables.ts';

/** The GPU tables of one rotary scheme, applied with `apply`. */
export class Rope {
  readonly freqs: Tensor;
  readonly axisOf: Tensor;
  readonly axes: number;

  constructor(
    private readonly ctx: GpuContext,
    readonly mode: RopeMode,
    o: { headDim: number; theta: number; mropeSection?: readonly number[] },
  ) {
    const t = ropeTables(mode, o);
    this.freqs = ctx.upload(t.freqs, [t.freqs.length], 'f32', `rope.${mode}.freqs`);
    this.axisOf = ctx.upload(t.axisOf, [t.axisOf.length], 'u32', `rope.${mode}.axes`);
    this.axes = t.axes;
  }

  /** Rotates `x [T, H, head_dim]` in place by `positions [axes, T]` (u32). */
  apply(x: Tensor, positions: Tensor): void {
    this.ctx.run(rotary(this.ctx, { x, positions, freqs: this.freqs, axisOf: this.axisOf }));
  }

  release(): void {
    this.freqs.release();
    this.axisOf.release();
  }
}
