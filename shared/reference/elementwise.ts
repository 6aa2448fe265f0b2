/**
 * Plain TypeScript references of the elementwise kernels (GELU, SwiGLU, residual add), computed
 * in f64 and returned as f32. No GPU.
 */

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);
const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/**
 * erf(z) in f64 (relative error about 1e-15).
 *
 * |z| < 3: the series erf(z) = 2/√π · e^(−z²) · Σₙ 2ⁿ z^(2n+1) / (1·3·5···(2n+1)), whose terms are
 * all positive (no cancellation). |z| ≥ 3: 1 − erfc(|z|) from the continued fraction below.
 */
export function erfRef(z: number): number {
  if (Number.isNaN(z)) return Number.NaN;
  const a = Math.abs(z);
  if (a >= 3) return Math.sign(z) * (1 - erfcPositive(a));
  let term = a;
  let sum = a;
  for (let n = 1; n < 200; n++) {
    term *= (2 * a * a) / (2 * n + 1);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return Math.sign(z) * TWO_OVER_SQRT_PI * Math.exp(-a * a) * sum;
}

/** erfc(z) = 1 − erf(z) in f64, accurate in relative terms for large positive z. */
export function erfcRef(z: number): number {
  if (Number.isNaN(z)) return Number.NaN;
  if (z >= 3) return erfcPositive(z);
  if (z <= -3) return 2 - erfcPositive(-z);
  return 1 - erfRef(z);
}

/**
 * erfc(z) for z ≥ 3 by the Laplace continued fraction
 * erfc(z) = e^(−z²)/√π · 1/(z + (1/2)/(z + 1/(z + (3/2)/(z + 2/(z + …))))), evaluated bottom-up.
 */
function erfcPositive(z: number): number {
  if (z > 27) return 0; // below the smallest f64
  let f = z;
  for (let k = 120; k >= 1; k--) f = z + k / 2 / f;
  return Math.exp(-z * z) / Math.sqrt(Math.PI) / f;
}

/** Exact GELU: 0.5·x·(1 + erf(x/√2)) = x·Φ(x), written as 0.5·x·erfc(−x/√2) to keep x < 0 accurate. */
export function geluErfRef(x: Float32Array): Float32Array {
  const y = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = 0.5 * x[i] * erfcRef(-x[i] / Math.SQRT2);
  return y;
}

/**
 * GELU, tanh approximation (`gelu_pytorch_tanh`): 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))).
 * Uses the identity 0.5·(1 + tanh(u)) = 1/(1 + e^(−2u)), which is exact and avoids the
 * cancellation of 1 + tanh(u) for u ≪ 0.
 */
export function geluTanhRef(x: Float32Array): Float32Array {
  const y = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    const u = SQRT_2_OVER_PI * (v + 0.044715 * v * v * v);
    y[i] = v / (1 + Math.exp(-2 * u));
  }
  return y;
}

/** SwiGLU: silu(gate)·up = gate/(1 + e^(−gate))·up. */
export function siluMulRef(gate: Float32Array, up: Float32Array): Float32Array {
  if (gate.length !== up.length) throw new Error(`siluMulRef: gate ${gate.length} vs up ${up.length} elements`);
  const y = new Float32Array(gate.length);
  for (let i = 0; i < gate.length; i++) y[i] = (gate[i] / (1 + Math.exp(-gate[i]))) * up[i];
  return y;
}

/** a + b. */
export function addRef(a: Float32Array, b: Float32Array): Float32Array {
  if (a.length !== b.length) throw new Error(`addRef: a ${a.length} vs b ${b.length} elements`);
  const y = new Float32Array(a.length);
  for (let i = 0; i < a.length; i++) y[i] = a[i] + b[i];
  return y;
}
