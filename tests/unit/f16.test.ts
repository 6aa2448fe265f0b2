import { describe, expect, it } from 'vitest';
import { f16BitsToF32, f32ToF16Bits, roundToF16 } from '../../shared/gpu/f16.ts';
import { Rng } from '../support/random.ts';

describe('f16 conversion', () => {
  it('encodes known values exactly', () => {
    expect(f32ToF16Bits(1)).toBe(0x3c00);
    expect(f32ToF16Bits(-2)).toBe(0xc000);
    expect(f32ToF16Bits(65504)).toBe(0x7bff);
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // rounds to +Inf
    expect(f32ToF16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(f32ToF16Bits(2 ** -25)).toBe(0x0000); // tie → even (0)
    expect(f32ToF16Bits(3 * 2 ** -25)).toBe(0x0002); // tie → even (2)
    expect(f32ToF16Bits(Number.NaN) & 0x7c00).toBe(0x7c00);
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie → even
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
  });

  it('round-trips every f16 bit pattern', () => {
    for (let h = 0; h < 0x10000; h++) {
      const v = f16BitsToF32(h);
      if (Number.isNaN(v)) continue;
      expect(f32ToF16Bits(v)).toBe(h);
    }
  });

  it('rounds random f32 to the nearest f16 (error ≤ half an ulp)', () => {
    const rng = new Rng(5);
    const xs = rng.normals(5000, 100);
    const r = roundToF16(xs);
    for (let i = 0; i < xs.length; i++) {
      const e = Math.floor(Math.log2(Math.abs(xs[i])));
      const ulp = 2 ** (Math.max(e, -14) - 10);
      expect(Math.abs(r[i] - xs[i])).toBeLessThanOrEqual(ulp / 2);
    }
  });
});
