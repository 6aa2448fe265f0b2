/**
 * Named trace points (llama.cpp's `cb(cur, "attn_norm", il)`): the model calls `trace` after each
 * block so a failing golden test can say where it diverged. The callback runs while the batch is
 * being encoded; `ctx.readF32(t)` called inside it snapshots the tensor at that point.
 */
import type { Tensor } from '../../gpu/tensor.ts';

export type TracePoint =
  | 'vision.block0_input'
  | 'vision.merger_input'
  | 'vision.merged'
  | 'vision.deepstack'
  | 'text.layer_input'
  | 'text.final_norm'
  | 'text.logits';

export interface TraceInfo {
  /** Layer or deepstack index where the point has one. */
  index?: number;
  /** Logical shape of the traced rows. */
  shape: readonly number[];
}

export type TraceFn = (point: TracePoint, t: Tensor, info: TraceInfo) => void;
