/**
 * The donor's measured speed: a square f32 matmul through the model's own `linear` kernel
 * (shared/kernels/linear, the variant this adapter selects), timed over whole submits:
 *
 *   warm-up (compiles the pipeline, checked against the fp32 reference)
 *   repeat { encode `batch` dispatches; await ctx.sync() } until `minSeconds` or `maxRounds`
 *   GFLOP/s = 2·M·N·K · dispatches / seconds / 1e9
 */
import { VlmeshError } from '../../../shared/errors.ts';
import type { GpuContext } from '../../../shared/gpu/context.ts';
import { linear, selectLinear } from '../../../shared/kernels/linear/index.ts';
import { linearRef } from '../../../shared/reference/linear.ts';

/** The kernel's result disagreed with the reference: the adapter computes wrongly. */
export class BenchmarkMismatchError extends VlmeshError {
  constructor(message: string) {
    super('BENCHMARK_MISMATCH', message);
  }
}

export interface MatmulBenchmark {
  gflops: number;
  seconds: number;
  dispatches: number;
  /** The linear kernel variant measured. */
  variant: string;
  size: { M: number; N: number; K: number };
}

export interface MatmulBenchmarkOptions {
  /** Square size (default 256: prefill-like rows, fits every adapter). */
  size?: number;
  /** Dispatches per submit (default 4). */
  batch?: number;
  /** Stop after this much timed work (default 0.6 s)… */
  minSeconds?: number;
  /** …or this many submits (default 50). */
  maxRounds?: number;
}

/** Deterministic values in [-1, 1) (a tiny LCG; the numbers do not matter, only their spread). */
function fill(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 31 - 1;
  }
  return a;
}

/**
 * Measures f32 matmul throughput on `ctx`.
 *
 * @example
 * const { gflops } = await measureMatmul(ctx);
 */
export async function measureMatmul(ctx: GpuContext, o: MatmulBenchmarkOptions = {}): Promise<MatmulBenchmark> {
  const S = o.size ?? 256;
  const batch = o.batch ?? 4;
  const minSeconds = o.minSeconds ?? 0.6;
  const maxRounds = o.maxRounds ?? 50;
  const [M, N, K] = [S, S, S];
  const xh = fill(M * K, 1);
  const wh = fill(N * K, 2);
  const x = ctx.upload(xh, [M, K], 'f32', 'bench:x');
  const w = ctx.upload(wh, [N, K], 'f32', 'bench:w');
  const y = ctx.empty([M, N], 'f32', 'bench:y');
  try {
    const args = { x, w, y, M, N, K };
    linear(ctx, args);
    const got = await ctx.readF32(y);
    const want = linearRef({ x: xh, w: wh, M, N, K });
    for (let i = 0; i < want.length; i += 97) {
      if (Math.abs(got[i]! - want[i]!) > 1e-3 + 1e-3 * Math.abs(want[i]!)) {
        throw new BenchmarkMismatchError(`matmul check failed at ${i}: ${got[i]} vs ${want[i]}; this adapter computes incorrectly`);
      }
    }
    let dispatches = 0;
    let rounds = 0;
    const t0 = performance.now();
    while (rounds < maxRounds && (performance.now() - t0) / 1000 < minSeconds) {
      for (let b = 0; b < batch; b++) linear(ctx, args);
      await ctx.sync();
      dispatches += batch;
      rounds++;
    }
    const seconds = (performance.now() - t0) / 1000;
    return { gflops: (2 * M * N * K * dispatches) / seconds / 1e9, seconds, dispatches, variant: selectLinear(ctx, args), size: { M, N, K } };
  } finally {
    x.release();
    w.release();
    y.release();
  }
}
