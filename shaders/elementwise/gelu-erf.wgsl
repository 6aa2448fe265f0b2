// elementwise/gelu-erf — y = 0.5·x·(1 + erf(x/√2)) = x·Φ(x)   (exact GELU, nn.GELU())
//
// Why it exists: the activation between the two linears of the vision patch merger and of the
// DeepStack mergers. WGSL has no erf, so this file carries one.
//
// erf / erfc, split in two ranges as in W. J. Cody, "Rational Chebyshev approximations for the
// error function", Math. Comp. 23 (1969) 631–637:
//   |z| < 1:  erf(z)  = z·A(z²), A a degree-6 polynomial;
//   |z| ≥ 1:  erfc(z) = t·exp(−z² + B(t)), t = 1/(1 + z/2), B a degree-10 polynomial — the form
//             of the erfc approximation in Press et al., Numerical Recipes (2nd ed., §6.2).
// The coefficients were fitted for this project (near-minimax: iteratively reweighted least
// squares on Chebyshev nodes against 40-digit erf/erfc): |A error| < 1.3e-9 relative,
// |B error| < 7e-10 absolute. Evaluated in f32, |erf error| ≤ 1.4e-7 (≈ 2 ulp at 1.0) over all z;
// erfc(z) keeps a relative error of about z²·2⁻²⁴ (the rounding of −z² in the exponent).
//
// GELU takes Φ(x) = 0.5·erfc(−x/√2) from the tail form for |z| ≥ 1, so x ≪ 0 keeps its relative
// accuracy instead of cancelling in 1 + erf(z).
//
// Header from the factory: `const WG: u32` (threads per workgroup), `const IN_PLACE: bool`
// (write back into x; the y binding is then a dummy). x is read_write in both variants so that
// they share one layout.
// Bindings: x [n] f32 (element i at xOffset + i), y [n] f32 (element i at yOffset + i).

struct Params {
  n: u32, xOffset: u32, yOffset: u32, _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

const FRAC_1_SQRT_2: f32 = 0.7071067811865476;

// erf(z) for |z| < 1.
fn erf_small(z: f32) -> f32 {
  let s = z * z;
  var p = 7.853857709685941e-05;
  p = p * s - 0.000801019252160029;
  p = p * s + 0.005188327560089023;
  p = p * s - 0.026853811869150673;
  p = p * s + 0.11283585147032141;
  p = p * s - 0.3761262582409357;
  p = p * s + 1.1283791657266904;
  return z * p;
}

// erfc(a) for a ≥ 1. a is capped at 10 (erfc(10) ≈ 2e-45, below f32 normals) so a² stays finite.
fn erfc_tail(a_in: f32) -> f32 {
  let a = min(a_in, 10.0);
  let t = 1.0 / (1.0 + 0.5 * a);
  var p = 0.2973059590387114;
  p = p * t - 1.0550740463717874;
  p = p * t + 1.339380006743043;
  p = p * t - 0.6335622303335754;
  p = p * t + 0.13044684271080148;
  p = p * t - 0.1905599558971886;
  p = p * t - 0.07984901301298086;
  p = p * t + 0.08287327859638456;
  p = p * t + 0.37501779568489535;
  p = p * t + 0.9999997317219251;
  p = p * t - 1.265512122816141;
  return t * exp(-a * a + p);
}

fn erf(z: f32) -> f32 {
  let a = abs(z);
  if (a < 1.0) { return erf_small(z); }
  return sign(z) * (1.0 - erfc_tail(a));
}

fn gelu_erf(v: f32) -> f32 {
  let z = v * FRAC_1_SQRT_2;
  let a = abs(z);
  if (a < 1.0) { return 0.5 * v * (1.0 + erf(z)); }
  let half_erfc = 0.5 * erfc_tail(a); // Φ(−|x|)
  return v * select(half_erfc, 1.0 - half_erfc, z > 0.0);
}

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + li; // the dispatch may be split in (x, y)
  if (i >= params.n) { return; }
  let v = gelu_erf(x[params.xOffset + i]);
  if (IN_PLACE) { x[params.xOffset + i] = v; } else { y[params.yOffset + i] = v; }
}
