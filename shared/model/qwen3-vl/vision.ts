/**
 * The vision tower, top-down like `Qwen3VLVisionModel`:
 * patch_embed → + interpolated pos_embed → blocks (LN → qkv → 2-D RoPE → block-diagonal
 * attention → proj; LN → fc1 → GELU(tanh) → fc2) → merger, with DeepStack mergers on the outputs
 * of the blocks listed in `deepstack_visual_indexes`.
 */
import type { GpuContext } from '../../gpu/context.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import { visionVarlen } from '../../kernels/attention/index.ts';
import { addInPlace, geluErf, geluTanh } from '../../kernels/elementwise/index.ts';
import { linear } from '../../kernels/linear/index.ts';
import { layerNorm } from '../../kernels/norm/index.ts';
import { posEmbedInterpCalls } from '../../kernels/vision/index.ts';
import type { Qwen3VLConfig } from './config.ts';
import { applyVisionRope, visionRopePositions } from './rope.ts';
import type { TraceFn } from './trace.ts';
import type { GpuWeights } from './weights.gpu.ts';

export type Grid = readonly [number, number, number];

export interface VisionOutput {
  /** Merger output `[P/4, out_hidden]`, one row per LLM token, in sequence order. */
  merged: Tensor;
  /** One `[P/4, out_hidden]` tensor per DeepStack level. */
  deepstack: Tensor[];
  /** LLM tokens (rows of `merged`). */
  tokens: number;
  release(): void;
}

const LN_EPS = 1e-6;

/**
 * Runs the vision tower on `pixelValues [P, 1536]` (official processor layout) for the given
 * grids (each image, or each video, as [t, h, w] in patches).
 */
export function visionForward(
  ctx: GpuContext,
  cfg: Qwen3VLConfig,
  w: GpuWeights,
  pixelValues: Tensor,
  grids: readonly Grid[],
  trace?: TraceFn,
): VisionOutput {
  const v = cfg.vision;
  const D = v.hiddenSize;
  const H = v.numHeads;
  const hd = D / H;
  const P = grids.reduce((s, [t, h, ww]) => s + t * h * ww, 0);
  const inDim = pixelValues.shape[1];
  const p = 'model.visual.';

  // patch_embed: Conv3d with kernel = stride is a linear map on the 1536-vector.
  const hidden = ctx.empty([P, D], 'f32', 'vision.hidden'); // [P, D]
  const patchW = w.get(`${p}patch_embed.proj.weight`);
  linear(ctx, {
    x: pixelValues,
    w: patchW.reshape([D, inDim]),
    bias: w.get(`${p}patch_embed.proj.bias`),
    y: hidden,
    M: P,
    N: D,
    K: inDim,
  });
  for (const call of posEmbedInterpCalls(ctx, {
    table: w.get(`${p}pos_embed.weight`),
    hidden,
    grids: grids.map(([t, h, ww]) => ({ t, h, w: ww })),
    merge: v.spatialMergeSize,
  })) {
    ctx.run(call);
  }
  trace?.('vision.block0_input', hidden, { shape: [P, D] });

  // cu_seqlens: each image, and each temporal patch of a video, attends only to itself.
  const cu: number[] = [0];
  for (const [t, h, ww] of grids) for (let i = 0; i < t; i++) cu.push(cu[cu.length - 1] + h * ww);
  const cuT = ctx.upload(new Uint32Array(cu), [cu.length], 'u32', 'vision.cu_seqlens');
  const ropePos = visionRopePositions(ctx, grids, v.spatialMergeSize);

  const x = ctx.empty([P, D], 'f32', 'vision.x');
  const q = ctx.empty([P, H, hd], 'f32', 'vision.q'); // [P, H, hd]
  const k = ctx.empty([P, H, hd], 'f32', 'vision.k');
  const vv = ctx.empty([P, H, hd], 'f32', 'vision.v');
  const attn = ctx.empty([P, H, hd], 'f32', 'vision.attn');
  const mlp = ctx.empty([P, v.intermediateSize], 'f32', 'vision.mlp');
  const deepstack: Tensor[] = [];

  for (let i = 0; i < v.depth; i++) {
    const b = `${p}blocks.${i}.`;
    layerNorm(ctx, { x: hidden, y: x, rows: P, n: D, eps: LN_EPS, weight: w.get(`${b}norm1.weight`), bias: w.get(`${b}norm1.bias`) });
    for (const [name, out] of [['q', q], ['k', k], ['v', vv]] as const) {
      linear(ctx, { x, w: w.get(`${b}attn.${name}.weight`), bias: w.get(`${b}attn.${name}.bias`), y: out, M: P, N: D, K: D });
    }
    applyVisionRope(ctx, q, ropePos, hd);
    applyVisionRope(ctx, k, ropePos, hd);
    ctx.run(visionVarlen(ctx, { q, k, v: vv, cuSeqlens: cuT, out: attn }));
    linear(ctx, { x: attn, w: w.get(`${b}attn.proj.weight`), bias: w.get(`${b}attn.proj.bias`), y: x, M: P, N: D, K: D });
    addInPlace(ctx, { a: hidden, b: x });
    layerNorm(ctx, { x: hidden, y: x, rows: P, n: D, eps: LN_EPS, weight: w.get(`${b}norm2.weight`), bias: w.get(`${b}norm2.bias`) });
    const I = v.intermediateSize;
    linear(ctx, { x, w: w.get(`${b}mlp.linear_fc1.weight`), bias: w.get(`${b}mlp.linear_fc1.bias`), y: mlp, M: P, N: I, K: D });
    geluTanh(ctx, { x: mlp });
    linear(ctx, { x: mlp, w: w.get(`${b}mlp.linear_fc2.weight`), bias: w.get(`${b}mlp.linear_fc2.bias`), y: x, M: P, N: D, K: I });
    addInPlace(ctx, { a: hidden, b: x });
    const level = v.deepstackVisualIndexes.indexOf(i);
    if (level >= 0) {
      const out = patchMerger(ctx, cfg, w, hidden, P, `${p}deepstack_merger_list.${level}.`, true);
      trace?.('vision.deepstack', out, { index: level, shape: out.shape });
      deepstack[level] = out;
    }
  }
  trace?.('vision.merger_input', hidden, { shape: [P, D] });
  const merged = patchMerger(ctx, cfg, w, hidden, P, `${p}merger.`, false);
  trace?.('vision.merged', merged, { shape: merged.shape });
  for (const t of [hidden, x, q, k, vv, attn, mlp, cuT, ropePos]) t.release();
  return {
    merged,
    deepstack,
    tokens: P / (v.spatialMergeSize * v.spatialMergeSize),
    release() {
      merged.release();
      for (const d of deepstack) d.release();
    },
  };
}

/**
 * `Qwen3VLVisionPatchMerger`: LayerNorm → view the 4 patches of each 2×2 window as one 4D
 * vector → fc1 → GELU(erf) → fc2. The merger normalises each patch over D before the view; the
 * DeepStack mergers (`postShuffle`) normalise the 4D vector after it.
 */
function patchMerger(
  ctx: GpuContext,
  cfg: Qwen3VLConfig,
  w: GpuWeights,
  hidden: Tensor,
  P: number,
  prefix: string,
  postShuffle: boolean,
): Tensor {
  const v = cfg.vision;
  const D = v.hiddenSize;
  const m2 = v.spatialMergeSize * v.spatialMergeSize;
  const rows = P / m2;
  const D4 = D * m2;
  const normed = ctx.empty([rows, D4], 'f32', `${prefix}normed`); // [P/4, 4D] = [P, D] viewed
  layerNorm(ctx, {
    x: hidden,
    y: normed,
    rows: postShuffle ? rows : P,
    n: postShuffle ? D4 : D,
    eps: LN_EPS,
    weight: w.get(`${prefix}norm.weight`),
    bias: w.get(`${prefix}norm.bias`),
  });
  const h1 = ctx.empty([rows, D4], 'f32', `${prefix}fc1`);
  linear(ctx, { x: normed, w: w.get(`${prefix}linear_fc1.weight`), bias: w.get(`${prefix}linear_fc1.bias`), y: h1, M: rows, N: D4, K: D4 });
  geluErf(ctx, { x: h1 });
  const out = ctx.empty([rows, v.outHiddenSize], 'f32', `${prefix}out`);
  linear(ctx, {
    x: h1,
    w: w.get(`${prefix}linear_fc2.weight`),
    bias: w.get(`${prefix}linear_fc2.bias`),
    y: out,
    M: rows,
    N: v.outHiddenSize,
    K: D4,
  });
  normed.release();
  h1.release();
  return out;
}
