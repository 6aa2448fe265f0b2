/**
 * The arithmetic of `vlmesh bench` (shared/bench/stats.ts and the probe kernels' counts): medians,
 * FLOP and byte counts against brute-force counting, and roofline fractions against hand-worked
 * numbers.
 */
import { describe, expect, it } from 'vitest';
import {
  BenchmarkInputError,
  boundBy,
  causalAttentionFlops,
  fractionOf,
  gbps,
  gflops,
  matmulBytes,
  matmulFlops,
  median,
  rooflineFraction,
  rooflineMs,
  summarize,
} from '../../shared/bench/stats.ts';
import { copyVec4Bytes, FMA_CHAINS, fmaPeakFlops } from '../../shared/kernels/bench/index.ts';

describe('median', () => {
  it('takes the middle value, or the mean of the two middle values', () => {
    expect(median([5])).toBe(5);
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([10, -1, 10, 7, 7])).toBe(7);
  });

  it('does not reorder its argument', () => {
    const xs = [3, 1, 2];
    median(xs);
    expect(xs).toEqual([3, 1, 2]);
  });

  it('refuses no samples and non-finite ones', () => {
    expect(() => median([])).toThrow(BenchmarkInputError);
    expect(() => median([1, Number.NaN])).toThrow(BenchmarkInputError);
    expect(() => median([Number.POSITIVE_INFINITY])).toThrow(BenchmarkInputError);
  });

  it('summarizes min, max and count', () => {
    expect(summarize([4, 2, 9, 1])).toEqual({ median: 3, min: 1, max: 9, n: 4 });
  });
});

describe('FLOP and byte counts', () => {
  it('matmul: 2·M·N·K FLOPs; W, x and y once', () => {
    expect(matmulFlops(256, 2048, 1024)).toBe(2 * 256 * 2048 * 1024);
    expect(matmulBytes(1, 6144, 2048, 2)).toBe(6144 * 2048 * 2 + 2048 * 4 + 6144 * 4);
  });

  it('causal attention counts each query against the keys it sees', () => {
    for (const [T, S] of [
      [1, 1],
      [1, 100],
      [7, 7],
      [5, 12],
      [64, 64],
    ]) {
      let keys = 0;
      for (let i = 0; i < T; i++) keys += S - T + i + 1; // query i sits at position S − T + i
      expect(causalAttentionFlops(T, S, 3, 16), `T=${T} S=${S}`).toBe(4 * keys * 3 * 16);
    }
  });

  it('probe kernels: fma chains × vec4 × 2, copy reads and writes every f32', () => {
    expect(FMA_CHAINS).toBe(8);
    expect(fmaPeakFlops(256, 10)).toBe(256 * 10 * 8 * 4 * 2);
    expect(copyVec4Bytes(1024)).toBe(8192);
  });
});

describe('rooflines', () => {
  const roof = { peakGflops: 100, bandwidthGBps: 10 };

  it('converts work and milliseconds into rates', () => {
    expect(gflops(2e9, 1000)).toBeCloseTo(2, 12);
    expect(gflops(1e9, 10)).toBeCloseTo(100, 9);
    expect(gbps(5e8, 50)).toBeCloseTo(10, 9);
    expect(() => gflops(1, 0)).toThrow(BenchmarkInputError);
    expect(() => gbps(1, -1)).toThrow(BenchmarkInputError);
  });

  it('fractions of a peak', () => {
    expect(fractionOf(25, 100)).toBe(0.25);
    expect(fractionOf(0, 100)).toBe(0);
    expect(() => fractionOf(1, 0)).toThrow(BenchmarkInputError);
    expect(() => fractionOf(Number.NaN, 1)).toThrow(BenchmarkInputError);
  });

  it('the roofline time is the larger of compute and memory time', () => {
    // 1 GFLOP at 100 GFLOP/s = 10 ms; 50 MB at 10 GB/s = 5 ms → compute-bound, 10 ms.
    expect(rooflineMs(roof, 1e9, 5e7)).toBeCloseTo(10, 9);
    expect(boundBy(roof, 1e9, 5e7)).toBe('compute');
    // 0.1 GFLOP = 1 ms; 200 MB = 20 ms → memory-bound, 20 ms.
    expect(rooflineMs(roof, 1e8, 2e8)).toBeCloseTo(20, 9);
    expect(boundBy(roof, 1e8, 2e8)).toBe('memory');
    // Measured 40 ms for 20 ms of roofline → half of it.
    expect(rooflineFraction(roof, 1e8, 2e8, 40)).toBeCloseTo(0.5, 12);
    expect(() => rooflineFraction(roof, 1e8, 2e8, 0)).toThrow(BenchmarkInputError);
    expect(() => rooflineMs({ peakGflops: 0, bandwidthGBps: 1 }, 1, 1)).toThrow(BenchmarkInputError);
  });
});
