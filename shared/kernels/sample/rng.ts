/**
 * The sampler's host-side randomness: xoshiro128** (Blackman & Vigna), a small 32-bit PRNG with
 * a 128-bit state, seeded through a splitmix32-style mixer so that nearby seeds give unrelated
 * streams. Same seed → same sequence on every platform (integer arithmetic only).
 *
 * The GPU sampler takes one u ∈ [0, 1) per row per step from here; the logits never leave the GPU.
 *
 * @example
 * const rng = new SampleRng(42);
 * const u = rng.uniforms(rows); // Float32Array, one draw per row
 */
import { VlmeshError } from '../../errors.ts';

/** A seed was not a non-negative safe integer. */
export class InvalidSeedError extends VlmeshError {
  constructor(message: string) {
    super('INVALID_SEED', message);
  }
}

const TWO_POW_32 = 4294967296;

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** murmur3's 32-bit finaliser: a bijective avalanche mix. */
function fmix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

export class SampleRng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** Seeds with a non-negative safe integer (all 53 bits count). */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) {
      throw new InvalidSeedError(`sampling seed must be a non-negative safe integer, got ${seed}`);
    }
    const lo = seed >>> 0;
    const hi = Math.floor(seed / TWO_POW_32) >>> 0;
    // Two splitmix32-style counters (low and high seed words), mixed word by word.
    const words: number[] = [];
    for (let i = 1; i <= 4; i++) {
      const a = fmix32((lo + Math.imul(i, 0x9e3779b9)) >>> 0);
      const b = fmix32((hi ^ 0x6a09e667) + Math.imul(i, 0xbb67ae85));
      words.push((a ^ rotl(b, 16)) >>> 0);
    }
    this.s0 = words[0];
    this.s1 = words[1];
    this.s2 = words[2];
    this.s3 = words[3];
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1; // the all-zero state is a fixed point
  }

  /** A generator with an explicit 128-bit state (tests against published reference outputs). */
  static fromState(s0: number, s1: number, s2: number, s3: number): SampleRng {
    const r = new SampleRng(0);
    r.s0 = s0 >>> 0;
    r.s1 = s1 >>> 0;
    r.s2 = s2 >>> 0;
    r.s3 = s3 >>> 0;
    return r;
  }

  /** Next 32-bit output, as an integer in [0, 2³²). */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.s1 << 9) >>> 0;
    this.s2 = (this.s2 ^ this.s0) >>> 0;
    this.s3 = (this.s3 ^ this.s1) >>> 0;
    this.s1 = (this.s1 ^ this.s2) >>> 0;
    this.s0 = (this.s0 ^ this.s3) >>> 0;
    this.s2 = (this.s2 ^ t) >>> 0;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 24 random bits: exactly representable in f32, and never 1 after rounding. */
  nextFloat(): number {
    return (this.nextU32() >>> 8) / 16777216;
  }

  /** `n` draws of `nextFloat()` as a Float32Array (one per row for the GPU sampler). */
  uniforms(n: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.nextFloat();
    return out;
  }
}
