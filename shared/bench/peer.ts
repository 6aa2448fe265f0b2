/**
 * Side-by-side with a peer: the same MatMul through onnxruntime-web's WebGPU execution provider
 * and through our `linear` kernels, in one page on one adapter, so the ratio ours / ORT needs no
 * cross-run comparison. Runs in a browser (ORT-web's WebGPU EP needs one); the page hands in the
 * loaded `ort` module and a GpuContext on `navigator.gpu`.
 *
 *   ORT:  y = a · b, b a float32 initializer [K, N] (uploaded once, like weights), a a GPU tensor
 *         on ORT's own device, y left on the GPU (preferredOutputLocation 'gpu-buffer')
 *   ours: y = x · Wᵀ, W [N, K] f32: gemv (few rows), matmul-vec4 and, where the adapter has
 *         fixed-size subgroups, matmul-rows — `linear` selects one of them
 *   both: wall time over `inner` runs between queue drains, median of `repeats` samples
 */
import type * as Ort from 'onnxruntime-web';
import type { GpuContext } from '../gpu/context.ts';
import { type LinearVariant, matmulRowsSupported, selectLinear } from '../kernels/linear/index.ts';
import { benchFill, type LimitsResult, type MatmulResult, type MatmulShape, measureLimits, measureMatmuls } from './kernels.ts';
import { matmulModel } from './onnx.ts';
import { gflops, median } from './stats.ts';

export interface PeerOptions {
  shapes: readonly MatmulShape[];
  repeats: number;
  /** Each sample lasts at least about this long. */
  targetMs: number;
  /** Measure the page adapter's FMA peak and copy bandwidth too. */
  limits: boolean;
  copyBytes?: number;
}

export interface PeerShapeResult extends MatmulShape {
  ort: { ms: number; gflops: number };
  /** Our kernels on the same shape (every variant that accepts it). */
  ours: MatmulResult[];
  /** The variant `linear` selects for this shape, and its result. */
  selected: MatmulResult;
  /** selected GFLOP/s ÷ ORT GFLOP/s. */
  ratio: number;
  /** best of ours ÷ ORT. */
  bestRatio: number;
}

export interface PeerResult {
  adapter: { vendor: string; architecture: string; device: string; description: string };
  userAgent: string;
  ortVersion: string;
  limits: LimitsResult | null;
  shapes: PeerShapeResult[];
}

const STORAGE = 0x80;
const COPY_SRC = 0x04;
const COPY_DST = 0x08;

async function timeOrt(session: Ort.InferenceSession, feeds: Record<string, Ort.Tensor>, device: GPUDevice, o: PeerOptions): Promise<number> {
  const once = async () => {
    const r = await session.run(feeds);
    for (const t of Object.values(r)) t.dispose();
  };
  await once(); // compiles
  await device.queue.onSubmittedWorkDone();
  const p0 = performance.now();
  await once();
  await device.queue.onSubmittedWorkDone();
  const inner = Math.max(1, Math.min(64, Math.ceil(o.targetMs / Math.max(performance.now() - p0, 1e-3))));
  const samples: number[] = [];
  for (let r = 0; r < o.repeats; r++) {
    const t0 = performance.now();
    for (let i = 0; i < inner; i++) await once();
    await device.queue.onSubmittedWorkDone();
    samples.push((performance.now() - t0) / inner);
  }
  return median(samples);
}

/**
 * Measures ORT-web's WebGPU MatMul and our linear kernels on the same shapes.
 *
 * @example
 * const ort = await import('/ort/ort.webgpu.min.mjs');
 * const result = await runPeerComparison(await createGpuContext(navigator.gpu), ort, opts);
 */
export async function runPeerComparison(
  ctx: GpuContext,
  ort: typeof Ort,
  o: PeerOptions,
  onProgress?: (line: string) => void,
): Promise<PeerResult> {
  const limits = o.limits ? await measureLimits(ctx, { repeats: o.repeats, targetMs: o.targetMs, copyBytes: o.copyBytes, method: 'wall', onProgress }) : null;
  // Without measured limits the fractions are relative to 1 GFLOP/s and 1 GB/s (not reported).
  const roof = limits ?? { peakGflops: 1, bandwidthGBps: 1 };
  const shapes: PeerShapeResult[] = [];
  for (const s of o.shapes) {
    // The fallback matmul-tiled is left out: on software adapters it alone would take minutes.
    const ours = await measureMatmuls(ctx, [s], roof, {
      weightDtype: 'f32',
      variants: ['linear/gemv', 'linear/matmul-vec4', ...(matmulRowsSupported(ctx) ? (['linear/matmul-rows'] as LinearVariant[]) : [])],
      repeats: o.repeats,
      targetMs: o.targetMs,
      method: 'wall',
      onProgress,
    });
    const b = benchFill(s.K * s.N, 2, 1 / Math.sqrt(s.K));
    const session = await ort.InferenceSession.create(matmulModel(s.M, s.K, s.N, b), {
      executionProviders: ['webgpu'],
      preferredOutputLocation: 'gpu-buffer',
    });
    const device = (await ort.env.webgpu.device) as GPUDevice;
    const a = benchFill(s.M * s.K, 1);
    const buf = device.createBuffer({ size: Math.ceil(a.byteLength / 16) * 16, usage: STORAGE | COPY_SRC | COPY_DST, label: 'ort.a' });
    device.queue.writeBuffer(buf, 0, a.buffer as ArrayBuffer, a.byteOffset, a.byteLength);
    const input = ort.Tensor.fromGpuBuffer(buf, { dataType: 'float32', dims: [s.M, s.K] });
    try {
      const ms = await timeOrt(session, { a: input }, device, o);
      const ortG = gflops(2 * s.M * s.N * s.K, ms);
      const selectedVariant = selectLinear(ctx, { x: ctx.dummyTensor(), w: ctx.dummyTensor(), y: ctx.dummyTensor(), M: s.M, N: s.N, K: s.K });
      const selected = ours.find((r) => r.variant === selectedVariant) ?? ours[0];
      const best = ours.reduce((x, y) => (y.gflops > x.gflops ? y : x));
      shapes.push({ ...s, ort: { ms, gflops: ortG }, ours, selected, ratio: selected.gflops / ortG, bestRatio: best.gflops / ortG });
      onProgress?.(`ort: ${s.phase} M=${s.M} N=${s.N} K=${s.K}: ORT ${ms.toFixed(3)} ms ${ortG.toFixed(2)} GFLOP/s; ours (${selected.variant}) ${selected.gflops.toFixed(2)} GFLOP/s; ratio ${(selected.gflops / ortG).toFixed(2)}`);
    } finally {
      input.dispose();
      buf.destroy();
      await session.release();
    }
  }
  const info = ctx.adapter;
  return {
    adapter: { vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description },
    userAgent: typeof navigator === 'undefined' ? '' : navigator.userAgent,
    ortVersion: ort.env.versions?.web ?? '',
    limits,
    shapes,
  };
}

