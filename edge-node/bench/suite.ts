/**
 * `vlmesh bench` (the default mode): what this adapter can do and how close our kernels and the
 * model come to it, plus onnxruntime-web on the same kind of adapter, as one report (JSON for
 * machines, a table for people). Parts:
 *
 *   kernels   adapter limits (FMA peak, copy bandwidth), matmul per variant and shape, attention
 *   model     a `vlmesh synth` checkpoint: TTFT, prefill, decode at batch 1/4/16, vision, memory
 *   ort       ORT-web's WebGPU MatMul vs our linear kernels, same shapes, same run: in this process on
 *             Dawn (the adapter of every other figure here), and in a Chromium page (SwiftShader)
 *
 * Kernel shapes use the model dims of `--size`; for `tiny` (32-wide layers, which would measure
 * only dispatch overhead) they use a 1024-wide layer instead.
 */
import { type AttentionResult, type BenchDims, type LimitsResult, type MatmulResult, type MatmulShape, matmulShapes, measureAttention, measureLimits, measureMatmuls, type ProgressFn } from '../../shared/bench/kernels.ts';
import type { PeerResult } from '../../shared/bench/peer.ts';
import type { GpuContext } from '../../shared/gpu/context.ts';
import { parseQwen3VLConfig } from '../../shared/model/qwen3-vl/config.ts';
import { type PresetSize, presetConfigJson } from '../../shared/model/qwen3-vl/presets.ts';
import { ensureSynthCheckpoint, type ModelResult, measureModel } from './model.ts';
import { runOrtInNode } from './ort-node.ts';
import { runOrtPeer } from './ort-peer.ts';

export type BenchPart = 'kernels' | 'model' | 'ort';

export interface BenchOptions {
  size: PresetSize;
  parts: readonly BenchPart[];
  /** Tiny shapes and few repeats: a smoke run (tests), not a measurement. */
  quick: boolean;
  skipVision: boolean;
  repeats?: number;
  onProgress?: ProgressFn;
}

export interface BenchReport {
  version: 1;
  size: PresetSize;
  quick: boolean;
  adapter: { vendor: string; architecture: string; device: string; description: string; isFallbackAdapter: boolean; backend: 'dawn'; features: string[] };
  timing: { method: string; note: string } | null;
  limits: { fma_gflops: number; copy_GBps: number; detail: LimitsResult } | null;
  matmul: {
    /** Best prefill-shaped GFLOP/s (compute-bound). */
    gflops: number;
    fraction_of_peak: number;
    best: MatmulResult;
    /** Best decode-shaped result (memory-bound): W bytes / time. */
    decode: { GBps: number; fraction_of_bandwidth: number; best: MatmulResult };
    /** Ours ÷ ORT-web on the prefill shape, on this adapter in this process (null when that part did not run). */
    ort_ratio: number | null;
    ort_ratio_decode: number | null;
    /** The same ratios in the Chromium page (another adapter: SwiftShader). */
    ort_ratio_browser: number | null;
    ort_ratio_decode_browser: number | null;
    dims: BenchDims;
    results: MatmulResult[];
  } | null;
  attention: AttentionResult[] | null;
  model: ModelResult | null;
  decode: { tokens_per_s: number; fraction_of_roofline: number; batch: number } | null;
  /** ORT-web vs ours on Dawn, in this process: the same adapter as `matmul`. */
  ort: (PeerResult & { runtime: 'node-dawn'; elapsed_s: number }) | { skipped: string } | null;
  /** ORT-web vs ours in a Chromium page (its own adapter). */
  ort_browser: (PeerResult & { runtime: 'chromium'; elapsed_s: number }) | { skipped: string } | null;
  elapsed_s: number;
}

const TINY_KERNEL_DIMS: BenchDims = { hidden: 1024, intermediate: 3072, heads: 8, kvHeads: 4, headDim: 128 };
const QUICK_DIMS: BenchDims = { hidden: 256, intermediate: 512, heads: 4, kvHeads: 2, headDim: 64 };

/** Kernel shapes for a size (see the module header). */
export function benchDims(size: PresetSize, quick: boolean): BenchDims {
  if (quick) return QUICK_DIMS;
  if (size === 'tiny') return TINY_KERNEL_DIMS;
  const t = parseQwen3VLConfig(presetConfigJson(size)).text;
  return { hidden: t.hiddenSize, intermediate: t.intermediateSize, heads: t.numHeads, kvHeads: t.numKvHeads, headDim: t.headDim };
}

/**
 * Runs the selected parts on `ctx` (Dawn) and, for `ort`, in Chromium.
 *
 * @example
 * const report = await runBench(ctx, { size: 'tiny', parts: ['kernels', 'model', 'ort'], quick: false, skipVision: false });
 */
export async function runBench(ctx: GpuContext, o: BenchOptions): Promise<BenchReport> {
  const started = performance.now();
  const log = o.onProgress ?? (() => {});
  const q = o.quick;
  const repeats = o.repeats ?? (q ? 3 : 5);
  const targetMs = q ? 10 : 40;
  const dims = benchDims(o.size, q);
  const features = [...ctx.device.features].map(String).sort();
  const report: BenchReport = {
    version: 1,
    size: o.size,
    quick: q,
    adapter: { ...ctx.adapter, backend: 'dawn', features },
    timing: null,
    limits: null,
    matmul: null,
    attention: null,
    model: null,
    decode: null,
    ort: null,
    ort_browser: null,
    elapsed_s: 0,
  };
  const needLimits = o.parts.includes('kernels') || o.parts.includes('model');
  let limits: LimitsResult | null = null;
  if (needLimits) {
    limits = await measureLimits(ctx, { repeats, targetMs, copyBytes: q ? 16 << 20 : undefined, onProgress: log });
    report.limits = { fma_gflops: limits.peakGflops, copy_GBps: limits.bandwidthGBps, detail: limits };
    report.timing = {
      method: limits.method,
      note:
        limits.method === 'wall'
          ? `wall clock around ctx.sync()${limits.timing.timestampMs !== null ? ` (timestamp-query read ${limits.timing.timestampMs.toFixed(2)} ms for ${limits.timing.wallMs.toFixed(2)} ms of wall time: not trusted)` : ''}`
          : 'GPU timestamps (timestamp-query), checked against the wall clock',
    };
  }
  if (o.parts.includes('kernels') && limits) {
    const kopts = { repeats, targetMs, method: limits.method, onProgress: log };
    const prefillRows = q ? [64] : [256, 512];
    const decodeRows = q ? [1] : [1, 4];
    // The fallback matmul-tiled on the smallest prefill shape only: on a software adapter it
    // takes seconds per run.
    const first = matmulShapes(dims, prefillRows.slice(0, 1), decodeRows);
    const rest: MatmulShape[] = matmulShapes(dims, prefillRows.slice(1), []);
    const results = [
      ...(await measureMatmuls(ctx, first, limits, kopts)),
      // The larger prefill shape: matmul-vec4 and the adapter's own prefill kernel.
      ...(await measureMatmuls(ctx, rest, limits, { ...kopts, variants: [...new Set(['linear/matmul-vec4', ctx.variants.linearPrefill] as const)] })),
    ];
    const best = (phase: 'prefill' | 'decode') =>
      results.filter((r) => r.phase === phase).reduce((a, b) => (b.fraction > a.fraction ? b : a));
    const bp = best('prefill');
    const bd = best('decode');
    report.matmul = {
      gflops: bp.gflops,
      fraction_of_peak: bp.fraction_of_peak,
      best: bp,
      decode: { GBps: bd.weightGBps, fraction_of_bandwidth: bd.fraction_of_bandwidth, best: bd },
      ort_ratio: null,
      ort_ratio_decode: null,
      ort_ratio_browser: null,
      ort_ratio_decode_browser: null,
      dims,
      results,
    };
    report.attention = await measureAttention(ctx, dims, limits, {
      ...kopts,
      prefillTokens: q ? 64 : 512,
      decodeContext: q ? 128 : 1024,
      decodeSeqs: q ? [1] : [1, 4],
    });
  }
  if (o.parts.includes('model') && limits) {
    const dir = await ensureSynthCheckpoint(o.size, log);
    const model = await measureModel(ctx, dir, limits, {
      size: o.size,
      promptTokens: q ? 32 : 256,
      decodeContext: q ? 32 : 128,
      decodeBatches: [1, 4, 16],
      decodeSteps: q ? 3 : 8,
      repeats: q ? 2 : 3,
      visionSizes: o.skipVision ? [] : q ? [448] : [448, 896, 1344],
      onProgress: log,
    });
    report.model = model;
    const b1 = model.decode.find((d) => d.batch === 1) ?? model.decode[0];
    report.decode = { tokens_per_s: b1.tokens_per_s, fraction_of_roofline: b1.fraction_of_roofline, batch: b1.batch };
  }
  if (o.parts.includes('ort')) {
    const t0 = performance.now();
    const ortShapes: MatmulShape[] = [
      { label: 'square', phase: 'prefill', M: q ? 64 : 256, N: dims.hidden, K: dims.hidden },
      { label: 'mlp-up', phase: 'decode', M: 1, N: dims.intermediate, K: dims.hidden },
    ];
    const peerOptions = { shapes: ortShapes, repeats: q ? 2 : repeats, targetMs, limits: false, copyBytes: 16 << 20 };
    const ratios = (p: PeerResult) => [p.shapes.find((s) => s.phase === 'prefill')?.ratio ?? null, p.shapes.find((s) => s.phase === 'decode')?.ratio ?? null];
    try {
      log('ort: onnxruntime-web on Dawn in this process (its first submission takes a while on a software adapter)');
      const peer = await runOrtInNode(ctx, peerOptions, log);
      report.ort = { ...peer, runtime: 'node-dawn', elapsed_s: (performance.now() - t0) / 1000 };
      if (report.matmul) [report.matmul.ort_ratio, report.matmul.ort_ratio_decode] = ratios(peer);
    } catch (e) {
      report.ort = { skipped: (e as Error).message };
      log(`ort: in Node skipped: ${(e as Error).message}`);
    }
    const t1 = performance.now();
    try {
      const peer = await runOrtPeer({ ...peerOptions, limits: !q, onProgress: log });
      report.ort_browser = { ...peer, runtime: 'chromium', elapsed_s: (performance.now() - t1) / 1000 };
      if (report.matmul) [report.matmul.ort_ratio_browser, report.matmul.ort_ratio_decode_browser] = ratios(peer);
    } catch (e) {
      report.ort_browser = { skipped: (e as Error).message };
      log(`ort: in Chromium skipped: ${(e as Error).message}`);
    }
  }
  report.elapsed_s = (performance.now() - started) / 1000;
  return report;
}

// ------------------------------------------------------------------------------------- table

const pct = (f: number) => `${(100 * f).toFixed(1)}%`;
const num = (v: number, d = 2) => v.toFixed(d);

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c]?.length ?? 0)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ')).join('\n');
}

/** The report for people. */
export function formatBenchReport(r: BenchReport): string {
  const out: string[] = [];
  const a = r.adapter;
  out.push(`adapter: ${a.description || a.device || a.vendor} (${a.vendor}/${a.architecture}${a.isFallbackAdapter ? ', fallback' : ''}); features ${a.features.join(', ')}`);
  if (r.timing) out.push(`timing: ${r.timing.note}; medians of several runs after warm-up${r.quick ? ' (--quick: smoke shapes, not a measurement)' : ''}`);
  if (r.limits) out.push(`limits: FMA peak ${num(r.limits.fma_gflops, 1)} GFLOP/s, copy bandwidth ${num(r.limits.copy_GBps)} GB/s (read + write)`);
  if (r.matmul) {
    const m = r.matmul;
    out.push('', `matmul (dims hidden ${m.dims.hidden}, intermediate ${m.dims.intermediate}):`);
    const rows = [['variant', 'phase', 'shape', 'W', 'ms', 'GFLOP/s', 'W GB/s', 'bound', 'of roof']];
    for (const x of m.results) {
      rows.push([x.variant, x.phase, `${x.label} ${x.M}×${x.N}×${x.K}`, x.weightDtype, num(x.ms, 3), num(x.gflops), num(x.weightGBps), x.bound, pct(x.fraction)]);
    }
    out.push(table(rows));
    out.push(`best prefill: ${m.best.variant} ${num(m.gflops)} GFLOP/s = ${pct(m.fraction_of_peak)} of FMA peak; best decode: ${m.decode.best.variant} ${num(m.decode.GBps)} GB/s of W = ${pct(m.decode.fraction_of_bandwidth)} of copy bandwidth`);
  }
  if (r.attention) {
    out.push('', 'attention:');
    const rows = [['kernel', 'rows', 'context', 'heads', 'ms', 'GFLOP/s', 'K/V GB/s', 'bound', 'of roof']];
    for (const x of r.attention) {
      rows.push([x.kernel, String(x.rows), String(x.context), `${x.heads}/${x.kvHeads}×${x.headDim}`, num(x.ms, 3), num(x.gflops), num(x.kvGBps), x.bound, pct(x.fraction)]);
    }
    out.push(table(rows));
  }
  if (r.model) {
    const m = r.model;
    out.push('', `model ${m.size} (synth, ${m.weightDtype} weights, ${(m.params.total / 1e6).toFixed(1)} M params, loaded in ${num(m.load_s, 1)} s):`);
    const rows = [['measure', 'value', 'of roof']];
    rows.push([`TTFT (${m.ttft.prompt_tokens} tokens)`, `${num(m.ttft.ms, 1)} ms`, pct(m.prefill.fraction_of_peak)]);
    rows.push(['prefill', `${num(m.prefill.tokens_per_s, 1)} tokens/s, ${num(m.prefill.gflops)} GFLOP/s`, pct(m.prefill.fraction_of_peak)]);
    for (const d of m.decode) rows.push([`decode batch ${d.batch}`, `${num(d.tokens_per_s, 1)} tokens/s (${num(d.step_ms, 2)} ms/step, ${num(d.achieved_GBps)} GB/s, ${d.bound}-bound)`, pct(d.fraction_of_roofline)]);
    for (const v of m.vision) rows.push([`vision ${v.pixels}²`, `${num(v.ms, 1)} ms/image (${v.patches} patches)`, pct(v.fraction_of_peak)]);
    rows.push(['peak GPU memory', `${(m.memory.peak_bytes / 2 ** 20).toFixed(1)} MiB`, '']);
    rows.push(['bytes/param, KV bytes/token', `${num(m.memory.bytes_per_param)}, ${m.memory.kv_bytes_per_token}`, '']);
    out.push(table(rows));
  }
  for (const [where, part] of [['in this process on Dawn', r.ort], ['in Chromium', r.ort_browser]] as const) {
    if (!part) continue;
    out.push('');
    if ('skipped' in part) out.push(`onnxruntime-web ${where}: skipped (${part.skipped})`);
    else {
      const p = part;
      out.push(`onnxruntime-web ${p.ortVersion} WebGPU EP vs ours, ${where}, on ${p.adapter.description || p.adapter.vendor}${p.limits ? ` (page FMA peak ${num(p.limits.peakGflops)} GFLOP/s, copy ${num(p.limits.bandwidthGBps)} GB/s)` : ''}:`);
      const rows = [['shape', 'ORT ms', 'ORT GFLOP/s', 'ours', 'ours GFLOP/s', 'ours/ORT']];
      for (const s of p.shapes) rows.push([`${s.phase} ${s.M}×${s.N}×${s.K}`, num(s.ort.ms, 3), num(s.ort.gflops), s.selected.variant, num(s.selected.gflops), `${num(s.ratio)}×`]);
      out.push(table(rows));
    }
  }
  out.push('', `elapsed ${num(r.elapsed_s, 1)} s`);
  return `${out.join('\n')}\n`;
}
