/**
 * Model-level benchmarks on `vlmesh synth` checkpoints (random weights, real shapes): TTFT and
 * prefill tokens/s for a fixed prompt, decode tokens/s at several batch sizes, vision-encoder time
 * per image size, peak GPU memory — each with the fraction of the roofline that bounds it.
 *
 *   prefill   FLOPs = 2·(decoder projection params)·P + causal attention + lm_head (1 row)
 *             → compute-bound → fraction of the FMA peak
 *   decode    bytes per step = decoder weights + lm_head (each read once in the ideal) + K/V of
 *             every sequence; FLOPs = 2·(projection + lm_head params)·B + attention. The roof
 *             is the slower of bytes ÷ copy bandwidth and FLOPs ÷ FMA peak: memory-bound at
 *             batch 1, compute-bound once B rows share each weight read on an adapter with few
 *             FLOPs per byte (lavapipe: from about 4 rows)
 *   vision    FLOPs ≈ 2·(block params)·P + 4·P²·hidden per block + merger on P/4 rows
 *
 * The decode cache is grown to the context length without computing it (its values do not change
 * the time of a step); every step is the engine's: embed, layers, final norm, lm_head, argmax on
 * the GPU, one readback of B ids.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchFill, measureCopyBandwidth, type ProgressFn } from '../../shared/bench/kernels.ts';
import { causalAttentionFlops, fractionOf, gbps, gflops, type Rooflines, summarize } from '../../shared/bench/stats.ts';
import { VlmeshError } from '../../shared/errors.ts';
import type { GpuContext } from '../../shared/gpu/context.ts';
import { gather } from '../../shared/kernels/embedding/index.ts';
import { argmax } from '../../shared/kernels/sample/index.ts';
import { qwen3VLExpectedTensors, WeightGroup } from '../../shared/model/qwen3-vl/weights.ts';
import type { PresetSize } from '../../shared/model/qwen3-vl/presets.ts';
import { openModelDir } from '../io/model-dir.ts';

const BIN = fileURLToPath(new URL('../bin/vlmesh.mjs', import.meta.url));

/** `vlmesh synth` failed. */
export class SynthError extends VlmeshError {
  constructor(message: string) {
    super('SYNTH_FAILED', message);
  }
}

/**
 * The synth checkpoint of `size`, written once under the OS temp dir and reused
 * (`<tmp>/vlmesh-bench-synth-<size>`; written to a `.partial` dir, then renamed).
 */
export async function ensureSynthCheckpoint(size: PresetSize, onProgress?: ProgressFn): Promise<string> {
  const dir = join(tmpdir(), `vlmesh-bench-synth-${size}`);
  if (existsSync(join(dir, 'config.json'))) return dir;
  const partial = `${dir}.partial-${process.pid}`;
  await rm(partial, { recursive: true, force: true });
  onProgress?.(`model: writing the ${size} synth checkpoint to ${dir} (once)`);
  // A child process: synth prints its summary on stdout, which belongs to the bench report.
  const code = await new Promise<number>((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'synth', '--size', size, '--out', partial], { stdio: ['ignore', 2, 2] });
    child.on('error', reject);
    child.on('exit', (c) => resolve(c ?? 1));
  });
  if (code !== 0) throw new SynthError(`vlmesh synth --size ${size} exited with ${code}`);
  if (!existsSync(join(dir, 'config.json'))) {
    await rm(dir, { recursive: true, force: true });
    await rename(partial, dir);
  } else {
    await rm(partial, { recursive: true, force: true });
  }
  return dir;
}

export interface ModelBenchOptions {
  size: PresetSize;
  /** Prompt tokens for TTFT / prefill. */
  promptTokens: number;
  /** Cached tokens per sequence during decode. */
  decodeContext: number;
  decodeBatches: readonly number[];
  /** Timed decode steps per batch size (median taken). */
  decodeSteps: number;
  /** Timed samples of TTFT and of each vision size. */
  repeats: number;
  /** Square image sizes in pixels; empty skips the vision encoder. */
  visionSizes: readonly number[];
  dtype?: 'f32' | 'f16';
  onProgress?: ProgressFn;
}

export interface DecodeResult {
  batch: number;
  step_ms: number;
  tokens_per_s: number;
  /** Weight + K/V bytes a step must read at least. */
  bytes_per_step: number;
  flops_per_step: number;
  achieved_GBps: number;
  /** Which roof bounds the step (the slower of the two). */
  bound: 'memory' | 'compute';
  /** Roof time ÷ measured time. */
  fraction_of_roofline: number;
}

export interface VisionResult {
  pixels: number;
  patches: number;
  ms: number;
  gflops: number;
  fraction_of_peak: number;
}

export interface ModelResult {
  size: PresetSize;
  dir: string;
  weightDtype: string;
  load_s: number;
  params: { text: number; vision: number; total: number };
  ttft: { prompt_tokens: number; ms: number; min_ms: number; max_ms: number };
  prefill: { tokens_per_s: number; gflops: number; fraction_of_peak: number; flops: number };
  decode: DecodeResult[];
  /** The copy bandwidth the decode fractions are relative to (the best of the run's two probes). */
  decode_bandwidth_GBps: number;
  vision: VisionResult[];
  memory: {
    peak_bytes: number;
    weight_bytes: number;
    bytes_per_param: number;
    kv_bytes_per_token: number;
  };
}

/** Deterministic prompt ids (the speed of a step does not depend on which tokens). */
function promptIds(n: number): Uint32Array {
  return Uint32Array.from({ length: n }, (_, i) => 1000 + ((i * 7919) % 20000));
}

/**
 * Loads the checkpoint in `dir` and measures it.
 *
 * @example
 * const r = await measureModel(ctx, await ensureSynthCheckpoint('tiny'), limits, opts);
 */
export async function measureModel(ctx: GpuContext, dir: string, roof: Rooflines, o: ModelBenchOptions): Promise<ModelResult> {
  const log = o.onProgress ?? (() => {});
  const t0 = performance.now();
  const m = await openModelDir(ctx, dir, { dtype: o.dtype });
  const loadS = (performance.now() - t0) / 1000;
  const { model, config } = m;
  const tc = config.text;
  const Hd = tc.hiddenSize;
  log(`model: ${o.size} loaded in ${loadS.toFixed(1)} s (${(model.weights.bytes / 2 ** 20).toFixed(1)} MiB of ${ctx.variants.weights} weights)`);
  try {
    // Parameter counts and the bytes a decode step reads, from the checkpoint's tensors.
    const tensors = qwen3VLExpectedTensors(config);
    const count = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
    let textParams = 0;
    let visionParams = 0;
    let layerProjParams = 0;
    let visionBlockParams = 0;
    let visionMergerParams = 0;
    let decodeWeightBytes = 0;
    for (const t of tensors) {
      const n = count(t.shape);
      if (t.group === WeightGroup.Vision) {
        visionParams += n;
        if (t.shape.length === 2 && t.name.includes('.blocks.')) visionBlockParams += n;
        else if (t.shape.length === 2) visionMergerParams += n;
        continue;
      }
      textParams += n;
      if (t.group === WeightGroup.Layer && t.shape.length === 2) layerProjParams += n;
      if (t.group === WeightGroup.Layer || t.group === WeightGroup.FinalNorm || t.group === WeightGroup.LmHead) {
        decodeWeightBytes += model.weights.get(t.name).byteLength;
      }
    }
    const lmHead = tc.tieWordEmbeddings ? 'model.language_model.embed_tokens.weight' : 'lm_head.weight';
    if (tc.tieWordEmbeddings) decodeWeightBytes += model.weights.get(lmHead).byteLength;
    const embed = model.weights.get('model.language_model.embed_tokens.weight');

    // ---- TTFT / prefill: embed → chunks of 256 → final norm + lm_head of the last row → argmax → read.
    const P = o.promptTokens;
    const ids = promptIds(P);
    const chunk = 256;
    const ttftSamples: number[] = [];
    for (let r = 0; r < o.repeats + 1; r++) {
      const kv = model.createKvCache({ numBlocks: Math.ceil(P / 16) + 1, blockSize: 16 });
      const out = ctx.empty([1], 'u32', 'bench.sampled');
      await ctx.sync();
      const s0 = performance.now();
      const prompt = model.prepare(ids);
      for (let start = 0; start < P; start += chunk) {
        const T = Math.min(chunk, P - start);
        kv.blocks.grow(0, T);
        const hidden = ctx.empty([T, Hd], 'f32', 'prefill.hidden');
        ctx.copy(prompt.embeds.view(start * Hd, T * Hd), hidden);
        model.forward(kv, {
          hidden,
          seq: 0,
          start,
          positions: [0, 1, 2].map((a) => prompt.positions[a].subarray(start, start + T)) as [Int32Array, Int32Array, Int32Array],
        });
        if (start + T === P) {
          const logits = model.logits(hidden, T - 1, 1);
          ctx.run(argmax(ctx, { logits, out }));
          logits.release();
        }
        hidden.release();
      }
      await ctx.read(out);
      const ms = performance.now() - s0;
      if (r > 0) ttftSamples.push(ms); // the first run compiles the pipelines
      prompt.release();
      out.release();
      kv.release();
    }
    const ttft = summarize(ttftSamples);
    let attnFlops = 0;
    for (let start = 0; start < P; start += chunk) {
      const T = Math.min(chunk, P - start);
      attnFlops += causalAttentionFlops(T, start + T, tc.numHeads, tc.headDim);
    }
    const prefillFlops = 2 * layerProjParams * P + attnFlops * tc.numLayers + 2 * tc.vocabSize * Hd;
    const prefillG = gflops(prefillFlops, ttft.median);
    log(`model: TTFT ${ttft.median.toFixed(1)} ms for ${P} tokens (${((P / ttft.median) * 1000).toFixed(1)} tokens/s, ${prefillG.toFixed(2)} GFLOP/s)`);

    // ---- Decode at each batch size. The cache is f32 (the engine's): K and V of every layer.
    // The bandwidth roof is measured again next to the decode steps (minutes after the run's
    // first probe, and the memory system of a shared machine drifts); the higher one counts.
    const fresh = await measureCopyBandwidth(ctx, { onProgress: log });
    const decodeBw = Math.max(roof.bandwidthGBps, fresh.GBps);
    const kvPerToken = 2 * tc.numLayers * tc.numKvHeads * tc.headDim * 4;
    const decode: DecodeResult[] = [];
    const L = o.decodeContext;
    const warm = 2;
    for (const B of o.decodeBatches) {
      const perSeq = Math.ceil((L + warm + o.decodeSteps + 1) / 16) + 1;
      const kv = model.createKvCache({ numBlocks: B * perSeq + 1, blockSize: 16 });
      const seqs = Array.from({ length: B }, (_, i) => i);
      for (const s of seqs) kv.blocks.grow(s, L);
      const hidden = ctx.empty([B, Hd], 'f32', 'decode.hidden');
      const idT = ctx.empty([B], 'u32', 'decode.ids');
      const out = ctx.empty([B], 'u32', 'bench.sampled');
      let next = Array.from(promptIds(B));
      let pos = L;
      const samples: number[] = [];
      try {
        for (let step = 0; step < warm + o.decodeSteps; step++) {
          await ctx.sync();
          const s0 = performance.now();
          ctx.write(idT, Uint32Array.from(next));
          gather(ctx, { ids: idT, table: embed, out: hidden, hostIds: next });
          for (const s of seqs) kv.blocks.grow(s, 1);
          const p = new Int32Array(B).fill(pos);
          model.decodeBatch(kv, { hidden, seqs, starts: new Array(B).fill(pos), positions: [p, p, p] });
          const logits = model.logits(hidden, 0, B);
          ctx.run(argmax(ctx, { logits, out }));
          next = Array.from(await ctx.read(out));
          logits.release();
          if (step >= warm) samples.push(performance.now() - s0);
          pos++;
        }
      } finally {
        hidden.release();
        idT.release();
        out.release();
        kv.release();
      }
      const stepMs = summarize(samples).median;
      // K/V read by the attention of a step: every cached token of every sequence (mid-run length).
      const ctxLen = L + warm + o.decodeSteps / 2;
      const bytes = decodeWeightBytes + B * ctxLen * kvPerToken;
      const flops = B * (2 * (layerProjParams + tc.vocabSize * Hd) + causalAttentionFlops(1, ctxLen, tc.numHeads, tc.headDim) * tc.numLayers);
      const memoryMs = bytes / (decodeBw * 1e6);
      const computeMs = flops / (roof.peakGflops * 1e6);
      const bound = memoryMs >= computeMs ? 'memory' : 'compute';
      const r: DecodeResult = {
        batch: B,
        step_ms: stepMs,
        tokens_per_s: (B / stepMs) * 1000,
        bytes_per_step: bytes,
        flops_per_step: flops,
        achieved_GBps: gbps(bytes, stepMs),
        bound,
        fraction_of_roofline: Math.max(memoryMs, computeMs) / stepMs,
      };
      decode.push(r);
      log(`model: decode batch ${B}: ${stepMs.toFixed(2)} ms/step, ${r.tokens_per_s.toFixed(1)} tokens/s, ${(100 * r.fraction_of_roofline).toFixed(1)}% of the ${bound} roofline`);
    }

    // ---- Vision encoder per image size.
    const vision: VisionResult[] = [];
    const vc = config.vision;
    for (const px of o.visionSizes) {
      const g = px / vc.patchSize;
      const patches = g * g;
      const pv = benchFill(patches * 1536, 11);
      const samples: number[] = [];
      // The first size also compiles the tower's pipelines (an untimed run); every size stops
      // sampling once 10 s are spent (1344² on a software adapter takes tens of seconds).
      const warmup = vision.length === 0 ? 1 : 0;
      let spent = 0;
      for (let r = 0; r < warmup + o.repeats && (r <= warmup || spent < 10_000); r++) {
        await ctx.sync();
        const s0 = performance.now();
        const outV = model.encodeVision(pv, [[1, g, g]]);
        await ctx.sync();
        const ms = performance.now() - s0;
        if (r >= warmup) {
          samples.push(ms);
          spent += ms;
        }
        outV.release();
      }
      const ms = summarize(samples).median;
      const flops = 2 * visionBlockParams * patches + 4 * patches * patches * vc.hiddenSize * vc.depth + (2 * visionMergerParams * patches) / 4;
      const gf = gflops(flops, ms);
      vision.push({ pixels: px, patches, ms, gflops: gf, fraction_of_peak: fractionOf(gf, roof.peakGflops) });
      log(`model: vision ${px}×${px} (${patches} patches): ${ms.toFixed(1)} ms, ${gf.toFixed(2)} GFLOP/s`);
    }

    return {
      size: o.size,
      dir,
      weightDtype: String(o.dtype ?? ctx.variants.weights),
      load_s: loadS,
      params: { text: textParams, vision: visionParams, total: textParams + visionParams },
      ttft: { prompt_tokens: P, ms: ttft.median, min_ms: ttft.min, max_ms: ttft.max },
      prefill: { tokens_per_s: (P / ttft.median) * 1000, gflops: prefillG, fraction_of_peak: fractionOf(prefillG, roof.peakGflops), flops: prefillFlops },
      decode,
      decode_bandwidth_GBps: decodeBw,
      vision,
      memory: {
        peak_bytes: ctx.pool.stats.peakBytes,
        weight_bytes: model.weights.bytes,
        bytes_per_param: model.weights.bytes / (textParams + visionParams),
        kv_bytes_per_token: kvPerToken,
      },
    };
  } finally {
    m.release();
  }
}
