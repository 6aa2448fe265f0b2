/**
 * The model's rotary embeddings: interleaved MRoPE for the text decoder and 2-D RoPE for the
 * vision tower, with their GPU tables cached per context and configuration.
 */
import type { GpuContext } from '../../gpu/context.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import { Rope, RopeMode, visionPatchPositions } from '../../kernels/rope/index.ts';
import type { Qwen3VLConfig } from './config.ts';

const VISION_THETA = 10000;
const cache = new WeakMap<GpuContext, Map<string, Rope>>();

function ropeFor(ctx: GpuContext, mode: RopeMode, o: { headDim: number; theta: number; mropeSection?: readonly number[] }): Rope {
  let m = cache.get(ctx);
  if (!m) {
    m = new Map();
    cache.set(ctx, m);
  }
  const key = `${mode}:${o.headDim}:${o.theta}:${o.mropeSection ?? ''}`;
  let r = m.get(key);
  if (!r) {
    r = new Rope(ctx, mode, o);
    m.set(key, r);
  }
  return r;
}

/** Interleaved MRoPE on `x [T, H, head_dim]` with positions `[3, T]` u32. */
export function applyTextRope(ctx: GpuContext, cfg: Qwen3VLConfig, x: Tensor, positions: Tensor): void {
  const t = cfg.text;
  const mode = t.mropeInterleaved ? RopeMode.InterleavedMrope : RopeMode.Neox;
  const rope = ropeFor(ctx, mode, { headDim: t.headDim, theta: t.ropeTheta, mropeSection: t.mropeSection });
  rope.apply(x, positions); // Neox tables read axis 0 only
}

/** (row, col) of every patch, `[2, P]` u32, for the vision tower's 2-D RoPE. */
export function visionRopePositions(ctx: GpuContext, grids: readonly (readonly [number, number, number])[], merge: number): Tensor {
  const pos = visionPatchPositions(grids, merge);
  return ctx.upload(pos, [2, pos.length / 2], 'u32', 'vision.rope_positions');
}

/** 2-D RoPE on `x [P, H, head_dim]`. */
export function applyVisionRope(ctx: GpuContext, x: Tensor, positions: Tensor, headDim: number): void {
  ropeFor(ctx, RopeMode.Vision2d, { headDim, theta: VISION_THETA }).apply(x, positions);
}
