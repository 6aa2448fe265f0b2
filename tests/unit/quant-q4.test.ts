/**
 * The q4 format on the host: exact bit packing, the scale choice, the error bound |w − ŵ| ≤ scale/2,
 * f16 scales, shape checks.
 */
import { describe, expect, it } from 'vitest';
import { ShapeError } from '../../shared/errors.ts';
import { f16BitsToF32, f32ToF16Bits } from '../../shared/gpu/f16.ts';
import { canQuantizeQ4, dequantizeQ4, q4Bytes, q4Code, quantizeQ4 } from '../../shared/io/quant-q4.ts';
import { linearQ4Ref } from '../../shared/reference/linear-q4.ts';
import { Rng } from '../support/random.ts';

describe('q4 quantization', () => {
  it('packs 8 codes per u32, first element in the low nibble', () => {
    // One row of 32 with max |w| = 7 → scale 1, codes = w + 8.
    const w = new Float32Array(32);
    for (let k = 0; k < 32; k++) w[k] = (k % 15) - 7; // -7..7 repeating
    const q = quantizeQ4(w, 1, 32);
    expect(q.scales[0]).toBe(1);
    expect(q.codes.length).toBe(4);
    // Elements 0..7: -7..0 → codes 1..8: word 0x87654321.
    expect(q.codes[0]).toBe(0x87654321);
    // Elements 8..15: 1..7, -7 → codes 9..15, 1: word 0x1fedcba9.
    expect(q.codes[1]).toBe(0x1fedcba9);
    for (let k = 0; k < 32; k++) expect(q4Code(q.codes, 32, 0, k)).toBe(w[k] + 8);
    expect(Array.from(dequantizeQ4(q))).toEqual(Array.from(w));
  });

  it('chooses scale = max|w| / 7 per group, code 8 for an all-zero group', () => {
    const w = new Float32Array(2 * 64);
    w[5] = -3.5; // row 0 group 0: max 3.5 → scale 0.5
    w[40] = 1.4; // row 0 group 1: max 1.4 → scale 0.2
    // row 1 group 0 all zero; row 1 group 1: max 7e-3
    w[64 + 33] = 7e-3;
    const q = quantizeQ4(w, 2, 64, { groupSize: 32 });
    expect(Array.from(q.scales)).toEqual([0.5, Math.fround(0.2), 0, Math.fround(1e-3)]);
    expect(q4Code(q.codes, 64, 0, 5)).toBe(1); // -7 + 8
    expect(q4Code(q.codes, 64, 0, 40)).toBe(15);
    for (let k = 0; k < 32; k++) expect(q4Code(q.codes, 64, 1, k)).toBe(8);
    expect(q4Code(q.codes, 64, 1, 33)).toBe(15);
    for (const code of [q4Code(q.codes, 64, 0, 0), q4Code(q.codes, 64, 1, 50)]) expect(code).toBe(8);
  });

  it('keeps every error within scale/2 (f32 and f16 scales), never emits code 0', () => {
    const rng = new Rng(7);
    for (const scaleDtype of ['f32', 'f16'] as const) {
      for (const G of [32, 64, 128]) {
        const N = 17, K = 256;
        const w = rng.normals(N * K, 0.05);
        w[3] = 1; // an outlier
        const q = quantizeQ4(w, N, K, { groupSize: G, scaleDtype });
        const d = dequantizeQ4(q);
        for (let n = 0; n < N; n++) {
          for (let k = 0; k < K; k++) {
            const s = q.scales[n * (K / G) + Math.floor(k / G)];
            expect(Math.abs(d[n * K + k] - w[n * K + k])).toBeLessThanOrEqual(s / 2 + 1e-12);
            expect(q4Code(q.codes, K, n, k)).toBeGreaterThan(0);
          }
        }
        if (scaleDtype === 'f16') {
          expect(q.scalesF16).toBeDefined();
          for (let i = 0; i < q.scales.length; i++) {
            expect(q.scales[i]).toBe(f16BitsToF32(q.scalesF16![i]));
            expect(q.scalesF16![i]).toBe(f32ToF16Bits(q.scales[i]));
          }
        }
      }
    }
  });

  it('quantizing row chunks gives the same bits as the whole weight', () => {
    const rng = new Rng(8);
    const N = 10, K = 96;
    const w = rng.normals(N * K);
    const whole = quantizeQ4(w, N, K, { groupSize: 32, scaleDtype: 'f16' });
    const a = quantizeQ4(w.subarray(0, 4 * K), 4, K, { groupSize: 32, scaleDtype: 'f16' });
    const b = quantizeQ4(w.subarray(4 * K), 6, K, { groupSize: 32, scaleDtype: 'f16' });
    expect(Array.from(whole.codes)).toEqual([...a.codes, ...b.codes]);
    expect(Array.from(whole.scalesF16!)).toEqual([...a.scalesF16!, ...b.scalesF16!]);
  });

  it('rejects shapes the kernels cannot read', () => {
    expect(() => quantizeQ4(new Float32Array(48), 1, 48)).toThrow(ShapeError); // K not a multiple of 32
    expect(() => quantizeQ4(new Float32Array(96), 1, 96, { groupSize: 64 })).toThrow(ShapeError); // G ∤ K
    expect(() => quantizeQ4(new Float32Array(64), 1, 64, { groupSize: 16 })).toThrow(ShapeError); // G not ×32
    expect(canQuantizeQ4(2048)).toBe(true);
    expect(canQuantizeQ4(1000)).toBe(false);
    expect(q4Bytes(2048, 2048, 32, 'f16')).toBe(2048 * 2048 * (0.5 + 2 / 32));
  });

  it('the fp64 reference linear equals x·dequantize(W)ᵀ', () => {
    const rng = new Rng(9);
    const M = 3, N = 5, K = 64;
    const q = quantizeQ4(rng.normals(N * K), N, K);
    const x = rng.normals(M * K);
    const d = dequantizeQ4(q);
    const y = linearQ4Ref({ x, w: q, M });
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += x[m * K + k] * d[n * K + k];
        expect(y[m * N + n]).toBeCloseTo(s, 5);
      }
    }
  });
});
