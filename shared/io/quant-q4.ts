/**
 * The q4 weight format (int4, group-wise, symmetric; q4f16-style) and its packing on the host.
 *
 * A weight W `[N, K]` (Hugging Face `[out, in]`) is cut along K into groups of `groupSize`
 * elements (32 by default; a multiple of 32 that divides K). Each group gets one
 * scale and each element one 4-bit unsigned code:
 *
 *   scale = max|w| over the group / 7        (stored as f16 or f32; 0 for an all-zero group)
 *   code  = clamp(round(w / scale), -7, 7) + 8   ∈ [1, 15]   (8 when scale is 0)
 *   w ≈ (code − 8) · scale                    |error| ≤ scale / 2
 *
 * The rounding uses the scale as stored (after f16 rounding), so the bound holds for the values
 * the GPU reads. Code 0 is never produced: the range stays symmetric, so the largest |w| of a
 * group is exact (as exact as its scale) whichever its sign.
 *
 * Packing: 8 codes per u32 along K, element k of a row at bits `4·(k mod 8)` of word `k / 8`
 * (the first element in the low nibble). Codes `[N, K/8]` u32, scales `[N, K/groupSize]`.
 *
 *   row n:  w[n, 0..7] → codes[n, 0] = c7 c6 c5 c4 c3 c2 c1 c0 (c0 in bits 0..3)
 *           w[n, 0..G) share scales[n, 0]; w[n, G..2G) share scales[n, 1]; …
 */
import { ShapeError } from '../errors.ts';
import { f16BitsToF32, f32ToF16Bits } from '../gpu/f16.ts';

/** Default group size along K. */
export const Q4_DEFAULT_GROUP = 32;
/** K must be a multiple of this: the kernels read one vec4<u32> (32 codes) at a time. */
export const Q4_K_MULTIPLE = 32;
/** Largest |code − 8|: the symmetric range [-7, 7]. */
export const Q4_QMAX = 7;

/** Element type of the scales (and of a quantized linear's bias). */
export type Q4ScaleDType = 'f32' | 'f16';

export interface Q4Options {
  /** Elements per scale along K (default 32). A multiple of 32 that divides K. */
  groupSize?: number;
  /** How scales are stored (default f32). f16 scales are rounded before the codes are chosen. */
  scaleDtype?: Q4ScaleDType;
}

/** A quantized weight on the host. */
export interface Q4Host {
  N: number;
  K: number;
  groupSize: number;
  /** `[N, K/8]` packed codes. */
  codes: Uint32Array;
  /** `[N, K/groupSize]` scales as stored, as f32 values (f16-rounded when `scaleDtype` is f16). */
  scales: Float32Array;
  /** The same scales as f16 bit patterns, when `scaleDtype` is f16. */
  scalesF16?: Uint16Array;
}

/** Checks that a `[N, K]` weight can be stored as q4 with this group size; throws `ShapeError`. */
export function checkQ4Shape(N: number, K: number, groupSize: number, what = 'q4 weight'): void {
  if (!Number.isInteger(N) || N <= 0 || !Number.isInteger(K) || K <= 0) throw new ShapeError(`${what}: shape [${N}, ${K}] is not positive`);
  if (!Number.isInteger(groupSize) || groupSize <= 0 || groupSize % Q4_K_MULTIPLE !== 0) {
    throw new ShapeError(`${what}: group size ${groupSize} must be a positive multiple of ${Q4_K_MULTIPLE}`);
  }
  if (K % Q4_K_MULTIPLE !== 0) throw new ShapeError(`${what}: K = ${K} must be a multiple of ${Q4_K_MULTIPLE}`);
  if (K % groupSize !== 0) throw new ShapeError(`${what}: group size ${groupSize} must divide K = ${K}`);
}

/** True when a `[N, K]` weight can be stored as q4 with this group size. */
export function canQuantizeQ4(K: number, groupSize = Q4_DEFAULT_GROUP): boolean {
  return K > 0 && K % Q4_K_MULTIPLE === 0 && groupSize > 0 && groupSize % Q4_K_MULTIPLE === 0 && K % groupSize === 0;
}

/** The stored value of a scale (f16 round trip when stored as f16). */
function storedScale(s: number, dtype: Q4ScaleDType): number {
  return dtype === 'f16' ? f16BitsToF32(f32ToF16Bits(s)) : Math.fround(s);
}

/**
 * Quantizes rows of a `[rows, K]` f32 weight. `w` holds the rows densely; the result holds their
 * codes and scales densely (callers streaming a big weight call it per chunk of rows).
 *
 * @example
 * const q = quantizeQ4(w, N, K, { groupSize: 32, scaleDtype: 'f16' });
 */
export function quantizeQ4(w: ArrayLike<number>, rows: number, K: number, o: Q4Options = {}): Q4Host {
  const G = o.groupSize ?? Q4_DEFAULT_GROUP;
  const dtype = o.scaleDtype ?? 'f32';
  checkQ4Shape(rows, K, G);
  if (w.length < rows * K) throw new ShapeError(`quantizeQ4: ${w.length} values for [${rows}, ${K}]`);
  const groups = K / G;
  const codes = new Uint32Array((rows * K) / 8);
  const scales = new Float32Array(rows * groups);
  const bits = dtype === 'f16' ? new Uint16Array(rows * groups) : undefined;
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const base = r * K + g * G;
      let amax = 0;
      for (let i = 0; i < G; i++) amax = Math.max(amax, Math.abs(w[base + i]));
      const s = storedScale(amax / Q4_QMAX, dtype);
      const si = r * groups + g;
      scales[si] = s;
      if (bits) bits[si] = f32ToF16Bits(s);
      for (let i = 0; i < G; i += 8) {
        let word = 0;
        for (let j = 0; j < 8; j++) {
          const v = w[base + i + j];
          // Math.round rounds halves up; ties only occur at exact halves and either way the
          // error is scale/2. The division is in f64: the same code on every host.
          const q = s > 0 ? Math.min(Q4_QMAX, Math.max(-Q4_QMAX, Math.round(v / s))) : 0;
          word |= (q + 8) << (4 * j);
        }
        codes[(base + i) / 8] = word >>> 0;
      }
    }
  }
  return bits ? { N: rows, K, groupSize: G, codes, scales, scalesF16: bits } : { N: rows, K, groupSize: G, codes, scales };
}

/** The code of element (n, k): 1..15 (8 = zero). */
export function q4Code(codes: Uint32Array, K: number, n: number, k: number): number {
  return (codes[(n * K + k) >>> 3] >>> (4 * (k & 7))) & 15;
}

/** Dequantizes to a dense `[N, K]` f32 array: w = (code − 8) · scale. */
export function dequantizeQ4(q: Pick<Q4Host, 'N' | 'K' | 'groupSize' | 'codes' | 'scales'>): Float32Array {
  const { N, K, groupSize: G } = q;
  const out = new Float32Array(N * K);
  const groups = K / G;
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) out[n * K + k] = (q4Code(q.codes, K, n, k) - 8) * q.scales[n * groups + Math.floor(k / G)];
  }
  return out;
}

/** Bytes a q4 weight `[N, K]` takes: codes plus scales. */
export function q4Bytes(N: number, K: number, groupSize = Q4_DEFAULT_GROUP, scaleDtype: Q4ScaleDType = 'f16'): number {
  return (N * K) / 2 + N * (K / groupSize) * (scaleDtype === 'f16' ? 2 : 4);
}
