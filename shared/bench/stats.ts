/**
 * The arithmetic of `vlmesh bench`: medians of repeated runs and roofline fractions. Pure
 * functions, no GPU: the CPU truth for the numbers the benchmark prints.
 *
 *   compute-bound work:  fraction = (FLOPs / seconds) / peak FLOP/s           (matmul, prefill)
 *   memory-bound work:   fraction = (bytes / seconds) / copy bandwidth        (gemv, decode)
 *   roofline time       = max(FLOPs / peak, bytes / bandwidth); fraction = roofline time / measured
 */
import { VlmeshError } from '../errors.ts';

/** A benchmark input that cannot give a meaningful number (empty samples, zero time…). */
export class BenchmarkInputError extends VlmeshError {
  constructor(message: string) {
    super('BENCHMARK_INPUT', message);
  }
}

/**
 * The median of a non-empty list of finite numbers (the mean of the two middle values for an
 * even count). Does not modify its argument.
 *
 * @example
 * median([3, 1, 2]); // 2
 */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new BenchmarkInputError('median of no samples');
  for (const v of values) if (!Number.isFinite(v)) throw new BenchmarkInputError(`median: sample ${v} is not finite`);
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** Summary of timed samples (milliseconds). */
export interface SampleSummary {
  median: number;
  min: number;
  max: number;
  n: number;
}

/** Median, min and max of samples. */
export function summarize(samples: readonly number[]): SampleSummary {
  return { median: median(samples), min: Math.min(...samples), max: Math.max(...samples), n: samples.length };
}

function positive(name: string, v: number): void {
  if (!(v > 0) || !Number.isFinite(v)) throw new BenchmarkInputError(`${name} must be a positive finite number, got ${v}`);
}

/** FLOPs of y[M, N] = x[M, K] · W[N, K]ᵀ (a multiply-add counts 2). */
export function matmulFlops(M: number, N: number, K: number): number {
  return 2 * M * N * K;
}

/** Bytes a matmul must move at least: W once, x once, y once. */
export function matmulBytes(M: number, N: number, K: number, weightBytesPerElement: number): number {
  return N * K * weightBytesPerElement + M * K * 4 + M * N * 4;
}

/**
 * FLOPs of causal attention of T queries (the last T of S positions) with Hq heads of head_dim
 * hd: QKᵀ and P·V over the keys each query sees (positions ≤ its own).
 */
export function causalAttentionFlops(T: number, S: number, Hq: number, hd: number): number {
  // Query i (0-based within T) sees S − T + i + 1 keys.
  const keys = T * (S - T) + (T * (T + 1)) / 2;
  return 2 * 2 * keys * Hq * hd;
}

/** GFLOP/s of `flops` done in `ms` milliseconds. */
export function gflops(flops: number, ms: number): number {
  positive('time', ms);
  return flops / (ms * 1e-3) / 1e9;
}

/** GB/s (10⁹ bytes) of `bytes` moved in `ms` milliseconds. */
export function gbps(bytes: number, ms: number): number {
  positive('time', ms);
  return bytes / (ms * 1e-3) / 1e9;
}

/** Fraction of a roofline: achieved / peak (both in the same unit). */
export function fractionOf(achieved: number, peak: number): number {
  positive('peak', peak);
  if (!(achieved >= 0) || !Number.isFinite(achieved)) throw new BenchmarkInputError(`achieved must be ≥ 0 and finite, got ${achieved}`);
  return achieved / peak;
}

/** The adapter's measured limits. */
export interface Rooflines {
  /** Peak f32 FMA throughput, GFLOP/s. */
  peakGflops: number;
  /** Copy bandwidth (read + write), GB/s. */
  bandwidthGBps: number;
}

/**
 * Fastest time (ms) the adapter could do work of `flops` and `bytes`: the larger of the compute
 * time at peak and the memory time at the copy bandwidth.
 */
export function rooflineMs(r: Rooflines, flops: number, bytes: number): number {
  positive('peakGflops', r.peakGflops);
  positive('bandwidthGBps', r.bandwidthGBps);
  return Math.max(flops / (r.peakGflops * 1e9), bytes / (r.bandwidthGBps * 1e9)) * 1e3;
}

/** Which roof bounds work of `flops` and `bytes`. */
export function boundBy(r: Rooflines, flops: number, bytes: number): 'compute' | 'memory' {
  return flops / (r.peakGflops * 1e9) >= bytes / (r.bandwidthGBps * 1e9) ? 'compute' : 'memory';
}

/** Fraction of the roofline reached: roofline time / measured time. */
export function rooflineFraction(r: Rooflines, flops: number, bytes: number, measuredMs: number): number {
  positive('measured time', measuredMs);
  return rooflineMs(r, flops, bytes) / measuredMs;
}
