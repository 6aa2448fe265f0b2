/**
 * The text decoder, like `Qwen3VLTextModel`: per layer
 * RMSNorm → q/k/v → per-head q_norm/k_norm → interleaved MRoPE → paged KV append → causal
 * attention → o_proj → residual; RMSNorm → SwiGLU MLP → residual; then DeepStack features added at
 * visual positions after the first layers.
 *
 * Layers run over a half-open range [start, end) so a mesh stage can run a slice.
 */
import type { GpuContext } from '../../gpu/context.ts';
import type { Tensor } from '../../gpu/tensor.ts';
import { decodePaged, prefillPaged } from '../../kernels/attention/index.ts';
import { addInPlace, siluMul } from '../../kernels/elementwise/index.ts';
import { appendPaged } from '../../kernels/kv/index.ts';
import { linear } from '../../kernels/linear/index.ts';
import { rmsNorm } from '../../kernels/norm/index.ts';
import type { Qwen3VLConfig } from './config.ts';
import type { PagedKvCache } from './kv-cache.ts';
import { applyTextRope } from './rope.ts';
import type { TraceFn } from './trace.ts';
import type { GpuWeights } from './weights.gpu.ts';

/** Half-open layer range [start, end). */
export type LayerRange = readonly [number, number];

/** DeepStack features to add after layer k (k < deepstack.length) at the visual rows of a chunk. */
export interface DeepstackInput {
  /** One `[visualTokens, hidden]` tensor per level. */
  features: readonly Tensor[];
  /** Runs of visual rows in this chunk: chunk row `row`, feature row `featureRow`, `count` rows. */
  runs: readonly { row: number; featureRow: number; count: number }[];
}

export interface ChunkArgs {
  /** Hidden states of the chunk `[T, hidden]`, updated in place. */
  hidden: Tensor;
  /** Sequence id in the KV cache. */
  seq: number;
  /** Absolute index of the chunk's first token (tokens before it are in the cache). */
  start: number;
  /** Rotary positions `[3, T]` (t, h, w rows). */
  positions: readonly [ArrayLike<number>, ArrayLike<number>, ArrayLike<number>];
  deepstack?: DeepstackInput;
  trace?: TraceFn;
}

/**
 * Runs layers `range` over one chunk of one sequence. The cache must already hold room for the
 * chunk (`kv.blocks.grow(seq, T)` done by the caller).
 */
export function textLayersForward(
  ctx: GpuContext,
  cfg: Qwen3VLConfig,
  w: GpuWeights,
  kv: PagedKvCache,
  range: LayerRange,
  a: ChunkArgs,
): void {
  const t = cfg.text;
  const T = a.hidden.shape[0];
  const Hd = t.hiddenSize;
  const Hq = t.numHeads;
  const Hkv = t.numKvHeads;
  const hd = t.headDim;
  const I = t.intermediateSize;
  const x = ctx.empty([T, Hd], 'f32', 'text.x');
  const q = ctx.empty([T, Hq, hd], 'f32', 'text.q'); // [T, Hq, hd]
  const k = ctx.empty([T, Hkv, hd], 'f32', 'text.k'); // [T, Hkv, hd]
  const v = ctx.empty([T, Hkv, hd], 'f32', 'text.v');
  const attn = ctx.empty([T, Hq, hd], 'f32', 'text.attn');
  const gate = ctx.empty([T, I], 'f32', 'text.gate');
  const up = ctx.empty([T, I], 'f32', 'text.up');
  const act = ctx.empty([T, I], 'f32', 'text.act');
  const pos3 = new Uint32Array(3 * T);
  for (let axis = 0; axis < 3; axis++) for (let i = 0; i < T; i++) pos3[axis * T + i] = a.positions[axis][i];
  const positions = ctx.upload(pos3, [3, T], 'u32', 'text.positions'); // [3, T]
  const seqIds = ctx.upload(new Uint32Array(T).fill(0), [T], 'u32', 'text.seq_ids');
  const absPos = ctx.upload(Uint32Array.from({ length: T }, (_, i) => a.start + i), [T], 'u32', 'text.abs_positions');
  const tables = kv.tables([a.seq]);
  const ctxLens = T === 1 ? ctx.upload(new Uint32Array([a.start + 1]), [1], 'u32', 'text.context_lens') : null;

  for (let l = range[0]; l < range[1]; l++) {
    const p = `model.language_model.layers.${l}.`;
    a.trace?.('text.layer_input', a.hidden, { index: l, shape: [T, Hd] });
    rmsNorm(ctx, { x: a.hidden, y: x, rows: T, n: Hd, eps: t.rmsNormEps, weight: w.get(`${p}input_layernorm.weight`) });
    linear(ctx, { x, w: w.get(`${p}self_attn.q_proj.weight`), y: q, M: T, N: Hq * hd, K: Hd });
    linear(ctx, { x, w: w.get(`${p}self_attn.k_proj.weight`), y: k, M: T, N: Hkv * hd, K: Hd });
    linear(ctx, { x, w: w.get(`${p}self_attn.v_proj.weight`), y: v, M: T, N: Hkv * hd, K: Hd });
    // q_norm / k_norm: RMSNorm over head_dim of every head, before RoPE.
    rmsNorm(ctx, { x: q, rows: T * Hq, n: hd, eps: t.rmsNormEps, weight: w.get(`${p}self_attn.q_norm.weight`) });
    rmsNorm(ctx, { x: k, rows: T * Hkv, n: hd, eps: t.rmsNormEps, weight: w.get(`${p}self_attn.k_norm.weight`) });
    applyTextRope(ctx, cfg, q, positions);
    applyTextRope(ctx, cfg, k, positions);
    ctx.run(appendPaged(ctx, { kNew: k, vNew: v, seqIds, positions: absPos, blockTables: tables, kCache: kv.kCache(l), vCache: kv.vCache(l) }));
    if (ctxLens) {
      ctx.run(decodePaged(ctx, { q, contextLens: ctxLens, blockTables: tables, kCache: kv.kCache(l), vCache: kv.vCache(l), out: attn }));
    } else {
      ctx.run(prefillPaged(ctx, { q, blockTables: tables, seq: 0, start: a.start, kCache: kv.kCache(l), vCache: kv.vCache(l), out: attn }));
    }
    linear(ctx, { x: attn, w: w.get(`${p}self_attn.o_proj.weight`), y: x, M: T, N: Hd, K: Hq * hd });
    addInPlace(ctx, { a: a.hidden, b: x });
    rmsNorm(ctx, { x: a.hidden, y: x, rows: T, n: Hd, eps: t.rmsNormEps, weight: w.get(`${p}post_attention_layernorm.weight`) });
    linear(ctx, { x, w: w.get(`${p}mlp.gate_proj.weight`), y: gate, M: T, N: I, K: Hd });
    linear(ctx, { x, w: w.get(`${p}mlp.up_proj.weight`), y: up, M: T, N: I, K: Hd });
    siluMul(ctx, { gate, up, out: act });
    linear(ctx, { x: act, w: w.get(`${p}mlp.down_proj.weight`), y: x, M: T, N: Hd, K: I });
    addInPlace(ctx, { a: a.hidden, b: x });
    const ds = a.deepstack;
    if (ds && l < ds.features.length) {
      for (const run of ds.runs) {
        addInPlace(ctx, { a: a.hidden, b: ds.features[l], n: run.count * Hd, aOffset: run.row * Hd, bOffset: run.featureRow * Hd });
      }
    }
  }
  for (const tt of [x, q, k, v, attn, gate, up, act, positions, seqIds, absPos, tables]) tt.release();
  ctxLens?.release();
}
