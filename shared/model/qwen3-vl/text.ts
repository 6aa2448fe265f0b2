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
import { decodeAttention, prefillPaged } from '../../kernels/attention/index.ts';
import { addInPlace, siluMul } from '../../kernels/elementwise/index.ts';
import { appendPaged } from '../../kernels/kv/index.ts';
import { type AnyLinearArgs, GEMV_MAX_M, linear } from '../../kernels/linear/index.ts';
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
 * One decode step of several sequences together: row i of `hidden` is the newest token of
 * `seqs[i]`, at absolute index `starts[i]` (the cache holds the tokens before it).
 */
export interface DecodeBatchArgs {
  /** `[B, hidden]`, updated in place. */
  hidden: Tensor;
  seqs: readonly number[];
  starts: readonly number[];
  /** Rotary positions `[3, B]`. */
  positions: readonly [ArrayLike<number>, ArrayLike<number>, ArrayLike<number>];
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
  const T = a.hidden.shape[0];
  layersForward(ctx, cfg, w, kv, range, {
    hidden: a.hidden,
    tableSeqs: [a.seq],
    rowSeq: new Uint32Array(T),
    absPos: Uint32Array.from({ length: T }, (_, i) => a.start + i),
    positions: a.positions,
    decode: T === 1,
    prefill: { seq: 0, start: a.start },
    deepstack: a.deepstack,
    trace: a.trace,
  });
}

/**
 * Runs layers `range` over a decode batch (one new token per sequence). Every projection runs in
 * groups of at most `GEMV_MAX_M` rows, the shape a lone sequence uses, so each sequence's numbers
 * are bit-identical to decoding it alone: batching changes speed, never the tokens.
 */
export function textLayersDecodeBatch(
  ctx: GpuContext,
  cfg: Qwen3VLConfig,
  w: GpuWeights,
  kv: PagedKvCache,
  range: LayerRange,
  a: DecodeBatchArgs,
): void {
  const B = a.seqs.length;
  if (a.hidden.shape[0] !== B || a.starts.length !== B) throw new RangeError(`decode batch: ${B} sequences, ${a.hidden.shape[0]} rows, ${a.starts.length} starts`);
  layersForward(ctx, cfg, w, kv, range, {
    hidden: a.hidden,
    tableSeqs: a.seqs,
    rowSeq: Uint32Array.from({ length: B }, (_, i) => i),
    absPos: Uint32Array.from(a.starts),
    positions: a.positions,
    decode: true,
    trace: a.trace,
  });
}

/** `linear` over row groups of at most `GEMV_MAX_M` rows (batch-invariant decode); W plain or q4. */
export function linearRowGroups(ctx: GpuContext, args: AnyLinearArgs): void {
  if (args.M <= GEMV_MAX_M) {
    linear(ctx, args);
    return;
  }
  const ldx = args.ldx ?? args.K;
  const ldy = args.ldy ?? args.N;
  for (let m0 = 0; m0 < args.M; m0 += GEMV_MAX_M) {
    linear(ctx, {
      ...args,
      M: Math.min(GEMV_MAX_M, args.M - m0),
      ldx,
      ldy,
      xOffset: (args.xOffset ?? 0) + m0 * ldx,
      yOffset: (args.yOffset ?? 0) + m0 * ldy,
    });
  }
}

interface LayersArgs {
  hidden: Tensor;
  /** Sequences whose block tables are uploaded (table row r = tableSeqs[r]). */
  tableSeqs: readonly number[];
  /** Table row of each hidden row. */
  rowSeq: Uint32Array;
  /** Absolute cache index of each hidden row. */
  absPos: Uint32Array;
  positions: readonly [ArrayLike<number>, ArrayLike<number>, ArrayLike<number>];
  /** One row per sequence: paged decode attention (context = absPos + 1). */
  decode: boolean;
  /** Chunked-prefill attention of one sequence (table row `seq`) from `start`. */
  prefill?: { seq: number; start: number };
  deepstack?: DeepstackInput;
  trace?: TraceFn;
}

function layersForward(
  ctx: GpuContext,
  cfg: Qwen3VLConfig,
  w: GpuWeights,
  kv: PagedKvCache,
  range: LayerRange,
  a: LayersArgs,
): void {
  const t = cfg.text;
  const T = a.hidden.shape[0];
  const Hd = t.hiddenSize;
  const Hq = t.numHeads;
  const Hkv = t.numKvHeads;
  const hd = t.headDim;
  const I = t.intermediateSize;
  const lin = a.decode ? linearRowGroups : linear;
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
  const seqIds = ctx.upload(a.rowSeq, [T], 'u32', 'text.seq_ids');
  const absPos = ctx.upload(a.absPos, [T], 'u32', 'text.abs_positions');
  const tables = kv.tables(a.tableSeqs);
  const ctxLens = a.decode ? ctx.upload(a.absPos.map((p) => p + 1), [T], 'u32', 'text.context_lens') : null;

  for (let l = range[0]; l < range[1]; l++) {
    const p = `model.language_model.layers.${l}.`;
    a.trace?.('text.layer_input', a.hidden, { index: l, shape: [T, Hd] });
    rmsNorm(ctx, { x: a.hidden, y: x, rows: T, n: Hd, eps: t.rmsNormEps, weight: w.get(`${p}input_layernorm.weight`) });
    lin(ctx, { x, w: w.getLinear(`${p}self_attn.q_proj.weight`), y: q, M: T, N: Hq * hd, K: Hd });
    lin(ctx, { x, w: w.getLinear(`${p}self_attn.k_proj.weight`), y: k, M: T, N: Hkv * hd, K: Hd });
    lin(ctx, { x, w: w.getLinear(`${p}self_attn.v_proj.weight`), y: v, M: T, N: Hkv * hd, K: Hd });
    // q_norm / k_norm: RMSNorm over head_dim of every head, before RoPE.
    rmsNorm(ctx, { x: q, rows: T * Hq, n: hd, eps: t.rmsNormEps, weight: w.get(`${p}self_attn.q_norm.weight`) });
    rmsNorm(ctx, { x: k, rows: T * Hkv, n: hd, eps: t.rmsNormEps, weight: w.get(`${p}self_attn.k_norm.weight`) });
    applyTextRope(ctx, cfg, q, positions);
    applyTextRope(ctx, cfg, k, positions);
    ctx.run(appendPaged(ctx, { kNew: k, vNew: v, seqIds, positions: absPos, blockTables: tables, kCache: kv.kCache(l), vCache: kv.vCache(l) }));
    if (ctxLens) {
      ctx.run(decodeAttention(ctx, { q, contextLens: ctxLens, blockTables: tables, kCache: kv.kCache(l), vCache: kv.vCache(l), out: attn }));
    } else {
      const pf = a.prefill!;
      ctx.run(prefillPaged(ctx, { q, blockTables: tables, seq: pf.seq, start: pf.start, kCache: kv.kCache(l), vCache: kv.vCache(l), out: attn }));
    }
    lin(ctx, { x: attn, w: w.getLinear(`${p}self_attn.o_proj.weight`), y: x, M: T, N: Hd, K: Hq * hd });
    addInPlace(ctx, { a: a.hidden, b: x });
    rmsNorm(ctx, { x: a.hidden, y: x, rows: T, n: Hd, eps: t.rmsNormEps, weight: w.get(`${p}post_attention_layernorm.weight`) });
    lin(ctx, { x, w: w.getLinear(`${p}mlp.gate_proj.weight`), y: gate, M: T, N: I, K: Hd });
    lin(ctx, { x, w: w.getLinear(`${p}mlp.up_proj.weight`), y: up, M: T, N: I, K: Hd });
    siluMul(ctx, { gate, up, out: act });
    lin(ctx, { x: act, w: w.getLinear(`${p}mlp.down_proj.weight`), y: x, M: T, N: Hd, K: I });
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
