/**
 * Kernel-level benchmarks, isomorphic (Dawn in Node, navigator.gpu in a page): the adapter's
 * limits (peak FMA throughput, copy bandwidth), matmul GFLOP/s per `linear` variant and shape,
 * and attention prefill / decode times — each with the fraction of the roof that bounds it.
 *
 *   limits      fma-peak (compute roof), copy-vec4 (memory roof)
 *   matmul      prefill-shaped rows (M = 256, 512) → compute-bound → fraction of FMA peak
 *               decode-shaped rows  (M = 1, 4)     → memory-bound  → W bytes / time ÷ copy bandwidth
 *   attention   flash-prefill (causal, contiguous K/V), decode-paged and decode-subgroup (one query
 *               per sequence)
 */
import type { GpuContext } from '../gpu/context.ts';
import type { DType } from '../gpu/dtype.ts';
import { toF16Array } from '../gpu/f16.ts';
import type { ProgramCall } from '../gpu/program.ts';
import type { Tensor } from '../gpu/tensor.ts';
import { decodePaged, decodeSubgroup, decodeSubgroupSupported, flashPrefill } from '../kernels/attention/index.ts';
import { copyVec4, copyVec4Bytes, fmaPeak, fmaPeakFlops } from '../kernels/bench/index.ts';
import { type LinearVariant, linearCalls } from '../kernels/linear/index.ts';
import { causalAttentionFlops, fractionOf, gbps, gflops, matmulBytes, matmulFlops, type Rooflines } from './stats.ts';
import { type Timing, type TimingMethod, timeCalls, timeWall } from './timer.ts';

/** Model dimensions the kernel shapes are taken from. */
export interface BenchDims {
  hidden: number;
  intermediate: number;
  heads: number;
  kvHeads: number;
  headDim: number;
}

/** Progress lines (stderr in the CLI, console in a page). */
export type ProgressFn = (line: string) => void;

export interface KernelBenchOptions {
  /** Timed samples per measurement (median taken). Default 5. */
  repeats?: number;
  /** Untimed runs first. Default 1. */
  warmup?: number;
  /** Each sample lasts at least about this long (repetitions are batched). Default 40 ms. */
  targetMs?: number;
  method?: TimingMethod;
  onProgress?: ProgressFn;
}

/** Deterministic values in [-1, 1) scaled by `scale` (an LCG: the numbers only need spread). */
export function benchFill(n: number, seed: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s / 2 ** 31 - 1) * scale;
  }
  return a;
}

function uploadWeights(ctx: GpuContext, data: Float32Array, shape: number[], dtype: DType, label: string): Tensor {
  return dtype === 'f16' ? ctx.upload(toF16Array(data), shape, 'f16', label) : ctx.upload(data, shape, 'f32', label);
}

/**
 * Times dispatches: one untimed run (compiles), one wall-clock run that sets the repetitions per
 * sample (so a sample lasts about `targetMs`), then the timed samples. Work slower than half a
 * second per run gets at most 3 samples and no further warm-up (lavapipe's fallback kernels).
 */
async function timeProgram(ctx: GpuContext, calls: readonly ProgramCall[], o: KernelBenchOptions): Promise<Timing> {
  const encode = () => {
    for (const c of calls) ctx.run(c);
  };
  const probe = await timeWall(ctx, encode, { warmup: 1, repeats: 1 });
  const oneMs = Math.max(probe.ms.median, 1e-3);
  const inner = Math.max(1, Math.min(64, Math.ceil((o.targetMs ?? 40) / oneMs)));
  const slow = oneMs > 500;
  const repeats = slow ? Math.min(3, o.repeats ?? 5) : (o.repeats ?? 5);
  return timeCalls(ctx, calls, { warmup: slow ? 0 : (o.warmup ?? 1), repeats, inner, method: o.method });
}

// ------------------------------------------------------------------------------------- limits

export interface LimitsResult extends Rooflines {
  fma: { threads: number; iters: number; ms: number };
  copy: { bytes: number; ms: number };
  /** The method every later measurement should use (see `timing`). */
  method: TimingMethod;
  /**
   * The cross-check that chose it: the FMA probe timed both ways. GPU time cannot exceed the
   * wall time around it, so timestamps that do (lavapipe's, by 2–3×) are not trusted.
   */
  timing: { wallMs: number; timestampMs: number | null; trusted: boolean };
}

export interface LimitsOptions extends KernelBenchOptions {
  /** Bytes of each copy buffer; default 64 MiB (or the binding limit, if lower). */
  copyBytes?: number;
}

/**
 * Peak FMA throughput and copy bandwidth of this adapter, and the timing method to trust. Each
 * roof is the fastest of its samples: a roof is what the adapter was seen to reach, and on a
 * shared machine the median of a memory probe drifts by ±10 % from run to run (seen: 4.8 to
 * 5.8 GB/s on lavapipe), which would inflate every fraction measured against it.
 *
 * @example
 * const { peakGflops, bandwidthGBps, method } = await measureLimits(ctx);
 */
export async function measureLimits(ctx: GpuContext, o: LimitsOptions = {}): Promise<LimitsResult> {
  const target = o.targetMs ?? 40;
  const repeats = o.repeats ?? 5;
  // FMA: fixed threads (enough for any adapter's cores), iterations calibrated to the target.
  const threads = 256 * 1024;
  const out = ctx.empty([threads * 4], 'f32', 'bench.fma.out');
  let iters = 64;
  try {
    for (;;) {
      const t = await timeWall(ctx, () => ctx.run(fmaPeak(ctx, { out, threads, iters })), { warmup: 1, repeats: 1 });
      if (t.ms.median >= target / 4 || iters >= 1 << 20) {
        iters = Math.max(16, Math.round((iters * target) / Math.max(t.ms.median, 1e-3)));
        break;
      }
      iters *= 8;
    }
    o.onProgress?.(`limits: fma-peak ${threads} threads × ${iters} iterations`);
    const fmaCall = [fmaPeak(ctx, { out, threads, iters })];
    const wall = await timeCalls(ctx, fmaCall, { warmup: o.warmup ?? 1, repeats, method: 'wall' });
    let stamped: Timing | null = null;
    if (ctx.caps.timestampQuery && o.method !== 'wall') {
      stamped = await timeCalls(ctx, fmaCall, { warmup: 1, repeats, method: 'timestamp-query' });
    }
    const trusted = stamped !== null && stamped.method === 'timestamp-query' && stamped.ms.median <= wall.ms.median * 1.05;
    const method: TimingMethod = o.method ?? (trusted ? 'timestamp-query' : 'wall');
    const fmaMs = method === 'timestamp-query' && stamped ? stamped.ms.min : wall.ms.min;
    const peak = gflops(fmaPeakFlops(threads, iters), fmaMs);
    o.onProgress?.(
      `limits: fma ${peak.toFixed(1)} GFLOP/s; timing by ${method}${stamped ? ` (timestamps ${stamped.ms.median.toFixed(2)} ms vs wall ${wall.ms.median.toFixed(2)} ms: ${trusted ? 'trusted' : 'not trusted'})` : ''}`,
    );
    const copy = await measureCopyBandwidth(ctx, { ...o, method });
    return {
      peakGflops: peak,
      bandwidthGBps: copy.GBps,
      fma: { threads, iters, ms: fmaMs },
      copy: { bytes: copy.bytes, ms: copy.ms },
      method,
      timing: { wallMs: wall.ms.median, timestampMs: stamped?.ms.median ?? null, trusted },
    };
  } finally {
    out.release();
  }
}

/**
 * Copy bandwidth (read + write bytes ÷ time of the fastest sample) of vec4 arrays of at most
 * 64 MiB, within one binding.
 *
 * @example
 * const { GBps } = await measureCopyBandwidth(ctx, { method: 'timestamp-query' });
 */
export async function measureCopyBandwidth(ctx: GpuContext, o: LimitsOptions = {}): Promise<{ GBps: number; bytes: number; ms: number }> {
  const bytes = Math.min(o.copyBytes ?? 64 << 20, ctx.caps.maxBindingBytes, ctx.caps.limits.maxBufferSize);
  const n = Math.floor(bytes / 16) * 4;
  const src = ctx.upload(benchFill(n, 7), [n], 'f32', 'bench.copy.src');
  const dst = ctx.empty([n], 'f32', 'bench.copy.dst');
  try {
    const t = await timeProgram(ctx, [copyVec4(ctx, { src, dst })], o);
    const bw = gbps(copyVec4Bytes(n), t.ms.min);
    o.onProgress?.(`limits: copy-vec4 ${(n * 4) / 2 ** 20} MiB: ${bw.toFixed(2)} GB/s (read + write)`);
    return { GBps: bw, bytes: copyVec4Bytes(n), ms: t.ms.min };
  } finally {
    src.release();
    dst.release();
  }
}

// ------------------------------------------------------------------------------------- matmul

export interface MatmulShape {
  /** What the shape stands for, e.g. `mlp-up`. */
  label: string;
  phase: 'prefill' | 'decode';
  M: number;
  N: number;
  K: number;
}

export interface MatmulResult extends MatmulShape {
  variant: LinearVariant;
  weightDtype: DType;
  ms: number;
  gflops: number;
  /** Weight bytes read per millisecond-equivalent: bytes of W / time, GB/s. */
  weightGBps: number;
  fraction_of_peak: number;
  fraction_of_bandwidth: number;
  /** The roof that bounds this shape, and the fraction of it reached. */
  bound: 'compute' | 'memory';
  fraction: number;
}

/** The matmul shapes of a model: projections of one decoder layer, prefill and decode rows. */
export function matmulShapes(d: BenchDims, prefillRows: readonly number[], decodeRows: readonly number[]): MatmulShape[] {
  const proj = [
    { label: 'o-proj', N: d.hidden, K: d.heads * d.headDim },
    { label: 'mlp-up', N: d.intermediate, K: d.hidden },
  ];
  const shapes: MatmulShape[] = [];
  for (const M of prefillRows) for (const p of proj) shapes.push({ ...p, phase: 'prefill', M });
  for (const M of decodeRows) for (const p of proj) shapes.push({ ...p, phase: 'decode', M });
  return shapes;
}

/** The variants that accept a shape (gemv only for few rows). */
export function variantsFor(shape: MatmulShape): LinearVariant[] {
  return shape.M <= 8
    ? ['linear/gemv', 'linear/matmul-vec4', 'linear/matmul-rows', 'linear/matmul-tiled']
    : ['linear/matmul-vec4', 'linear/matmul-rows', 'linear/matmul-tiled'];
}

export interface MatmulBenchOptions extends KernelBenchOptions {
  /** Weight storage; default the model's (`ctx.variants.weights`). */
  weightDtype?: DType;
  /** Variants to measure; default every one that accepts the shape. */
  variants?: readonly LinearVariant[];
}

/**
 * GFLOP/s of every `linear` variant on every shape, with the fraction of the roof that bounds it.
 *
 * @example
 * const rows = await measureMatmuls(ctx, matmulShapes(dims, [256], [1]), limits);
 */
export async function measureMatmuls(
  ctx: GpuContext,
  shapes: readonly MatmulShape[],
  roof: Rooflines,
  o: MatmulBenchOptions = {},
): Promise<MatmulResult[]> {
  const wt: DType = o.weightDtype ?? (ctx.variants.weights as DType);
  const results: MatmulResult[] = [];
  for (const s of shapes) {
    const x = ctx.upload(benchFill(s.M * s.K, 1), [s.M, s.K], 'f32', 'bench.mm.x');
    const w = uploadWeights(ctx, benchFill(s.N * s.K, 2, 1 / Math.sqrt(s.K)), [s.N, s.K], wt, 'bench.mm.w');
    const y = ctx.empty([s.M, s.N], 'f32', 'bench.mm.y');
    try {
      for (const variant of o.variants ? variantsFor(s).filter((v) => o.variants!.includes(v)) : variantsFor(s)) {
        const calls = linearCalls(ctx, { x, w, y, M: s.M, N: s.N, K: s.K }, variant);
        const t = await timeProgram(ctx, calls, o);
        const flops = matmulFlops(s.M, s.N, s.K);
        const g = gflops(flops, t.ms.median);
        const wBytes = s.N * s.K * (wt === 'f16' ? 2 : 4);
        const wg = gbps(wBytes, t.ms.median);
        const fPeak = fractionOf(g, roof.peakGflops);
        const fBw = fractionOf(gbps(matmulBytes(s.M, s.N, s.K, wt === 'f16' ? 2 : 4), t.ms.median), roof.bandwidthGBps);
        const bound = s.phase === 'prefill' ? 'compute' : 'memory';
        results.push({
          ...s,
          variant,
          weightDtype: wt,
          ms: t.ms.median,
          gflops: g,
          weightGBps: wg,
          fraction_of_peak: fPeak,
          fraction_of_bandwidth: fBw,
          bound,
          fraction: bound === 'compute' ? fPeak : fBw,
        });
        o.onProgress?.(
          `matmul: ${variant} ${s.phase} ${s.label} M=${s.M} N=${s.N} K=${s.K} ${wt}: ${t.ms.median.toFixed(3)} ms, ${g.toFixed(1)} GFLOP/s, ${wg.toFixed(1)} GB/s of W`,
        );
      }
    } finally {
      x.release();
      w.release();
      y.release();
    }
  }
  return results;
}

// ---------------------------------------------------------------------------------- attention

export interface AttentionResult {
  kernel: 'attention/flash-prefill' | 'attention/decode-paged' | 'attention/decode-subgroup';
  /** Prefill: query tokens; decode: sequences. */
  rows: number;
  /** Keys each query (prefill: the last one) attends to. */
  context: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  ms: number;
  gflops: number;
  /** K and V bytes read (decode) per ms → GB/s. */
  kvGBps: number;
  bound: 'compute' | 'memory';
  fraction: number;
}

export interface AttentionBenchOptions extends KernelBenchOptions {
  prefillTokens: number;
  decodeContext: number;
  decodeSeqs: readonly number[];
}

/**
 * Causal prefill attention over T tokens, and paged decode attention of B sequences over
 * `decodeContext` cached keys each.
 */
export async function measureAttention(ctx: GpuContext, d: BenchDims, roof: Rooflines, o: AttentionBenchOptions): Promise<AttentionResult[]> {
  const { heads: Hq, kvHeads: Hkv, headDim: hd } = d;
  const out: AttentionResult[] = [];
  {
    const T = o.prefillTokens;
    const q = ctx.upload(benchFill(T * Hq * hd, 3), [T, Hq, hd], 'f32', 'bench.attn.q');
    const k = ctx.upload(benchFill(T * Hkv * hd, 4), [T, Hkv, hd], 'f32', 'bench.attn.k');
    const v = ctx.upload(benchFill(T * Hkv * hd, 5), [T, Hkv, hd], 'f32', 'bench.attn.v');
    const o2 = ctx.empty([T, Hq, hd], 'f32', 'bench.attn.out');
    try {
      const t = await timeProgram(ctx, [flashPrefill(ctx, { q, k, v, out: o2 })], o);
      const flops = causalAttentionFlops(T, T, Hq, hd);
      const g = gflops(flops, t.ms.median);
      out.push({ kernel: 'attention/flash-prefill', rows: T, context: T, heads: Hq, kvHeads: Hkv, headDim: hd, ms: t.ms.median, gflops: g, kvGBps: gbps(2 * T * Hkv * hd * 4, t.ms.median), bound: 'compute', fraction: fractionOf(g, roof.peakGflops) });
      o.onProgress?.(`attention: flash-prefill T=${T} Hq=${Hq} Hkv=${Hkv} hd=${hd}: ${t.ms.median.toFixed(3)} ms, ${g.toFixed(1)} GFLOP/s`);
    } finally {
      for (const x of [q, k, v, o2]) x.release();
    }
  }
  const blockSize = 16;
  const L = o.decodeContext;
  const blocksPer = Math.ceil(L / blockSize);
  for (const B of o.decodeSeqs) {
    const numBlocks = B * blocksPer;
    const cacheShape = [numBlocks, blockSize, Hkv, hd];
    const kCache = ctx.upload(benchFill(numBlocks * blockSize * Hkv * hd, 6), cacheShape, 'f32', 'bench.attn.kcache');
    const vCache = ctx.upload(benchFill(numBlocks * blockSize * Hkv * hd, 7), cacheShape, 'f32', 'bench.attn.vcache');
    const tables = ctx.upload(Uint32Array.from({ length: numBlocks }, (_, i) => i), [B, blocksPer], 'u32', 'bench.attn.tables');
    const lens = ctx.upload(new Uint32Array(B).fill(L), [B], 'u32', 'bench.attn.lens');
    const q = ctx.upload(benchFill(B * Hq * hd, 8), [B, Hq, hd], 'f32', 'bench.attn.q');
    const o2 = ctx.empty([B, Hq, hd], 'f32', 'bench.attn.out');
    const kernels = [['attention/decode-paged', decodePaged] as const, ...(decodeSubgroupSupported(ctx, hd) ? [['attention/decode-subgroup', decodeSubgroup] as const] : [])];
    try {
      for (const [kernel, factory] of kernels) {
        const t = await timeProgram(ctx, [factory(ctx, { q, contextLens: lens, blockTables: tables, kCache, vCache, out: o2 })], o);
        const bytes = 2 * B * L * Hkv * hd * 4;
        const bw = gbps(bytes, t.ms.median);
        out.push({
          kernel,
          rows: B,
          context: L,
          heads: Hq,
          kvHeads: Hkv,
          headDim: hd,
          ms: t.ms.median,
          gflops: gflops(causalAttentionFlops(1, L, Hq, hd) * B, t.ms.median),
          kvGBps: bw,
          bound: 'memory',
          fraction: fractionOf(bw, roof.bandwidthGBps),
        });
        o.onProgress?.(`attention: ${kernel.slice('attention/'.length)} B=${B} context=${L}: ${t.ms.median.toFixed(3)} ms, ${bw.toFixed(1)} GB/s of K/V`);
      }
    } finally {
      for (const x of [kCache, vCache, tables, lens, q, o2]) x.release();
    }
  }
  return out;
}
