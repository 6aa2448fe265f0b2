// common/trig — accurate f32 sine and cosine for any finite argument (include; no entry point).
//
// Why it exists: rotary embeddings need cos/sin of angle = f32(position)·inv_freq, up to
// max_position 262144 rad, and must agree with torch's float32 cos/sin of that same f32 angle.
// WGSL's builtin sin/cos only promise 2^-11 absolute error on [-π, π] and nothing beyond.
//
// Accuracy: |error| ≤ ~1.2e-7 absolute against sin/cos of the f32 argument computed exactly, for
// every finite f32 x (checked in float32 simulation for |x| up to 1e38 and on the GPU for
// positions up to 262144). There is no range limit: the reduction is exact, so the error does
// not grow with |x|. Non-finite x gives an unspecified result.
//
// Method:
//  1. |x| ≤ π/4: r = x, quadrant 0.
//  2. Otherwise Payne–Hanek reduction in integer arithmetic: x = m·2^(e−150) with m the 24-bit
//     significand; the product m × (2/π as a 192-bit integer) is formed exactly in u32 words and
//     the 32 bits of x·(2/π) that hold the quadrant (2 bits) and 30 fraction bits are picked out.
//     The fraction becomes r = frac·π/2 ∈ [-π/4, π/4] (absolute error ~2^-30·π/2 before the final
//     f32 rounding).
//     Why integers and not a Cody–Waite chain r = fma(-k, C_i, r): that chain is exact only if
//     each step is evaluated as written, and WGSL cannot mark an expression exact. Mesa's NIR
//     optimizer (behind the Vulkan drivers of Linux) has an inexact-math rule that turns
//     fma(a, b, fma(a, c, d)) into fma(a, b + c, d); b + c then rounds and the reduction loses
//     its extra bits. Such a chain measured fine on the test backends, but nothing forbids the
//     rewrite elsewhere. Integer arithmetic is never reassociated, and the cost (~100 integer
//     ops) is paid once per (token, frequency), not per head.
//  3. Minimax polynomials on [-π/4, π/4] (fitted for this file; ≤ 5.3e-9 with f32 coefficients):
//       sin r ≈ r + r³·(S1 + z·(S2 + z·S3)),   cos r ≈ 1 − z/2 + z²·(C1 + z·(C2 + z·C3)),  z = r².
//     No two fma steps in them share an operand, so contraction or the rewrite above changes
//     at most the last bit.
//  4. The quadrant q swaps and negates: (sin, cos)(x) = (s, c), (c, −s), (−s, −c), (−c, s).
//
//   x·(2/π) in fixed point:   … | q1 q0 . f29 f28 … f0 | (lower bits dropped)
//                                 └ quadrant ┘ └ 30 fraction bits → r

// Bits 1…192 after the binary point of 2/π, most significant word first.
const TRIG_TWO_OVER_PI = array<u32, 6>(
  0xA2F9836Eu, 0x4E441529u, 0xFC2757D1u, 0xF534DDC0u, 0xDB629599u, 0x3C439041u,
);
// π/2 · 2^-30, rounded to f32: one unit of the 30-bit quadrant fraction, in radians.
const TRIG_PIO2_UNIT: f32 = 0x1.921fb6p-30f;
const TRIG_PIO4: f32 = 0x1.921fb6p-1f;

const TRIG_S1: f32 = -0x1.55553ep-3f;
const TRIG_S2: f32 = 0x1.1104c6p-7f;
const TRIG_S3: f32 = -0x1.989012p-13f;
const TRIG_C1: f32 = 0x1.55554ap-5f;
const TRIG_C2: f32 = -0x1.6c0bb6p-10f;
const TRIG_C3: f32 = 0x1.99c3cep-16f;

// a·b as (low word, high word), from 16-bit limbs (WGSL has no 64-bit integers).
fn trig_mul_wide(a: u32, b: u32) -> vec2<u32> {
  let a0 = a & 0xFFFFu;
  let a1 = a >> 16u;
  let b0 = b & 0xFFFFu;
  let b1 = b >> 16u;
  let p00 = a0 * b0;
  let p01 = a0 * b1;
  let p10 = a1 * b0;
  let p11 = a1 * b1;
  let mid = (p00 >> 16u) + (p01 & 0xFFFFu) + (p10 & 0xFFFFu); // < 3·2^16
  let lo = (p00 & 0xFFFFu) | (mid << 16u);
  let hi = p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
  return vec2<u32>(lo, hi);
}

struct TrigReduced {
  r: f32, // in [-π/4, π/4]
  q: u32, // quadrant, mod 4
}

// Reduces |x| > π/4 (finite, normal): |x| = q·π/2 + r (mod 2π).
fn trig_reduce(ax: f32) -> TrigReduced {
  let bits = bitcast<u32>(ax);
  let e = (bits >> 23u) & 0xFFu;
  let m = (bits & 0x7FFFFFu) | 0x800000u;
  // p = m × TWO_OVER_PI as a 224-bit integer, little-endian words; p[7…11] stay 0.
  var p: array<u32, 12>;
  var carry = 0u;
  for (var i = 0u; i < 6u; i++) {
    let w = trig_mul_wide(m, TRIG_TWO_OVER_PI[5u - i]);
    let s = w.x + carry;
    p[i] = s;
    carry = w.y + select(0u, 1u, s < w.x); // w.y < 2^24: no overflow
  }
  p[6] = carry;
  // |x|·(2/π) = p · 2^(e − 342). The word we want has its lowest bit at 2^-30,
  // i.e. bit (312 − e) of p. For |x| > π/4, e ≥ 126, so the word index is ≤ 5.
  let s2 = 312u - e;
  let wi = s2 >> 5u;
  let b = s2 & 31u;
  var word = p[wi] >> b;
  if (b != 0u) { word |= p[wi + 1u] << (32u - b); }
  // Round to the nearest quadrant: add half a quadrant, split q and the signed fraction.
  word += 0x20000000u;
  let q = word >> 30u;
  let frac = i32(word & 0x3FFFFFFFu) - 0x20000000;
  return TrigReduced(f32(frac) * TRIG_PIO2_UNIT, q);
}

// Returns vec2(sin(a), cos(a)).
fn trig_sincos(a: f32) -> vec2<f32> {
  let ax = abs(a);
  var r = ax;
  var q = 0u;
  if (ax > TRIG_PIO4) {
    let red = trig_reduce(ax);
    r = red.r;
    q = red.q;
  }
  let z = r * r;
  let s = fma(r * z, fma(z, fma(z, TRIG_S3, TRIG_S2), TRIG_S1), r);
  let c = fma(z * z, fma(z, fma(z, TRIG_C3, TRIG_C2), TRIG_C1), fma(-0.5, z, 1.0));
  let odd = (q & 1u) != 0u;
  var sn = select(s, c, odd);
  var cs = select(c, s, odd);
  if ((q & 2u) != 0u) { sn = -sn; }
  if (((q + 1u) & 2u) != 0u) { cs = -cs; }
  if (a < 0.0) { sn = -sn; }
  return vec2<f32>(sn, cs);
}
