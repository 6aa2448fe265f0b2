import keySrc from '../../../shaders/sample/order-key.wgsl?raw';
import src from '../../../shaders/sample/top-k-top-p.wgsl?raw';
import { VlmeshError } from '../../errors.ts';
import type { GpuContext } from '../../gpu/context.ts';
import { assembleWgsl, type ProgramCall, splitWorkgroups } from '../../gpu/program.ts';
import { expectTensor, type Tensor } from '../../gpu/tensor.ts';

export const TOP_K_TOP_P = 'sample/top-k-top-p';

/** The id the sampler writes for a row with no finite logit to sample from. */
export const NO_TOKEN = 0xffffffff;

/** Invalid sampling settings, or a row that could not be sampled (no finite logits). */
export class SamplingError extends VlmeshError {
  constructor(message: string) {
    super('SAMPLING', message);
  }
}

/** Hugging Face generation settings the sampler implements. */
export interface SamplingSettings {
  /** Divides the logits first; must be > 0 (greedy decoding uses `argmax`). */
  temperature: number;
  /** Keep the tokens ≥ the k-th largest logit; 0 (or ≥ V) turns it off. */
  topK: number;
  /** Keep the smallest head of the distribution with mass ≥ p (at least one token); 1 turns it off. */
  topP: number;
}

export interface TopKTopPArgs extends SamplingSettings {
  /** Logits `[rows, V]`, f32. */
  logits: Tensor;
  /** One u ∈ [0, 1) per row (see `SampleRng.uniforms`), f32 `[rows]`. */
  uniforms: Tensor;
  /** Sampled token ids `[rows]`, u32 (`NO_TOKEN` for a row without finite logits). */
  out: Tensor;
}

/** Throws `SamplingError` unless the settings are in range. */
export function validateSampling(s: SamplingSettings): void {
  if (!(s.temperature > 0) || !Number.isFinite(s.temperature)) {
    throw new SamplingError(`temperature must be a finite number > 0, got ${s.temperature} (use argmax for greedy decoding)`);
  }
  if (!Number.isInteger(s.topK) || s.topK < 0 || s.topK > 0xffffffff) {
    throw new SamplingError(`top_k must be a non-negative integer (0 = off), got ${s.topK}`);
  }
  if (!(s.topP >= 0 && s.topP <= 1)) {
    throw new SamplingError(`top_p must be in [0, 1] (1 = off), got ${s.topP}`);
  }
}

/**
 * Temperature + top-k + top-p sampling of every row on the GPU, one workgroup per row; only the
 * ids come back. See `shaders/sample/top-k-top-p.wgsl` for the semantics and the algorithm.
 *
 * @example
 * ctx.write(u, rng.uniforms(rows));
 * ctx.run(topKTopP(ctx, { logits, uniforms: u, out: ids, temperature: 0.7, topK: 20, topP: 0.8 }));
 * const tokens = await ctx.read(ids); // then checkSampled(tokens)
 */
export function topKTopP(ctx: GpuContext, args: TopKTopPArgs): ProgramCall {
  const { logits, uniforms, out } = args;
  validateSampling(args);
  expectTensor(logits, `${TOP_K_TOP_P} logits`, { dtype: 'f32', rank: 2 });
  const [rows, V] = logits.shape;
  expectTensor(uniforms, `${TOP_K_TOP_P} uniforms`, { dtype: 'f32', shape: [rows] });
  expectTensor(out, `${TOP_K_TOP_P} out`, { dtype: 'u32', shape: [rows] });
  return {
    info: {
      name: TOP_K_TOP_P,
      cacheKey: '',
      source: () => assembleWgsl(keySrc, src),
      access: ['read', 'read', 'read_write'],
    },
    bindings: [logits, uniforms, out],
    uniforms: [
      { u32: rows },
      { u32: V },
      { u32: args.topK },
      { u32: 0 },
      { f32: args.temperature },
      { f32: args.topP },
      { u32: 0 },
      { u32: 0 },
    ],
    workgroups: splitWorkgroups(rows, ctx.caps.limits.maxComputeWorkgroupsPerDimension),
  };
}

/** Throws `SamplingError` naming the first row the sampler marked `NO_TOKEN`. */
export function checkSampled(ids: ArrayLike<number>): void {
  for (let r = 0; r < ids.length; r++) {
    if (ids[r] === NO_TOKEN) {
      throw new SamplingError(`row ${r}: the logits have no finite maximum after temperature (all -inf, NaN or +inf)`);
    }
  }
}
