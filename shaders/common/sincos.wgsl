// common/sincos — accurate sine and cosine for large f32 arguments (include; no entry point).
//
// Why: WGSL only promises 2^-11 absolute error for sin/cos on [-π, π], and rotary angles reach
// position·inv_freq ≈ 2.6e5 rad. Here the argument is reduced exactly by multiples of π/2
// (Cody–Waite: π/2 split into parts of at most 6 significant bits, so k·part is exact for
// |k| < 2^18, i.e. |x| < ~4.1e5 rad, past max_position 262144), then minimax polynomials on
// [-π/4, π/4] (the classic single-precision coefficients of the Cephes library) give ~1e-7.

const PIO2_1: f32 = 1.5625;
const PIO2_2: f32 = 0.008056640625;
const PIO2_3: f32 = 0.00023651123046875;
const PIO2_4: f32 = 3.159046173095703e-06;
const PIO2_5: f32 = 1.5832483768463135e-08;
const PIO2_6: f32 = 6.002665031701326e-11;
const PIO2_7: f32 = 7.389644451905042e-13;
const PIO2_8: f32 = 5.390302953474238e-15;
const TWO_OVER_PI: f32 = 0.6366197723675814;

// Returns vec2(sin(x), cos(x)).
fn sincos_precise(x: f32) -> vec2<f32> {
  let kf = round(x * TWO_OVER_PI);
  var r = x - kf * PIO2_1;
  r = r - kf * PIO2_2;
  r = r - kf * PIO2_3;
  r = r - kf * PIO2_4;
  r = r - kf * PIO2_5;
  r = r - kf * PIO2_6;
  r = r - kf * PIO2_7;
  r = r - kf * PIO2_8;
  let z = r * r;
  let s = r + r * z * (-1.6666654611e-1 + z * (8.3321608736e-3 + z * -1.9515295891e-4));
  let c = 1.0 - 0.5 * z + z * z * (4.166664568298827e-2 + z * (-1.388731625493765e-3 + z * 2.443315711809948e-5));
  let q = u32(i32(kf) & 3);
  switch q {
    case 0u: { return vec2<f32>(s, c); }
    case 1u: { return vec2<f32>(c, -s); }
    case 2u: { return vec2<f32>(-s, -c); }
    default: { return vec2<f32>(-c, s); }
  }
}
