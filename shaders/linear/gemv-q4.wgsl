// linear/gemv-q4 — y = x · Wᵀ (+ b) for decode shapes (M ≤ MAX_M rows) with a q4 weight W[N, K]:
// 4-bit codes packed 8 per u32 along K, one scale per GROUP elements (format: shared/io/quant-q4.ts).
//
// Why it exists: decode is bound by reading the weights once, and q4 reads 4.5 bits per weight
// instead of 16 or 32. The codes are dequantized in registers, never written back. Same scheme as
// gemv: each workgroup of 256 threads computes COLS columns, LANES threads share a column and
// stride through K in blocks of 32 codes (one vec4<u32> and one scale), reducing in workgroup memory.
// Per block the code·x dot products are summed first and multiplied by the block's scale once.
// LANES depends on K only, so a row's result never depends on M (batch invariance).
//
// GROUP must be a multiple of 32 (one scale per vec4<u32> block). Requires K % 32 == 0,
// ldx % 4 == 0, xOffset % 4 == 0.
//
// Header from the factory: `alias ST` (scale and bias type), `const HAS_BIAS: bool`,
// `const MAX_M: u32`, `const LANES: u32`, `const COLS: u32`, `const GROUP: u32`.

struct Params {
  M: u32, N: u32, K: u32, ldx: u32,
  ldy: u32, xOffset: u32, yOffset: u32, _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> codes: array<vec4<u32>>; // [N, K/32]
@group(0) @binding(2) var<storage, read> scales: array<ST>;       // [N, K/GROUP]
@group(0) @binding(3) var<storage, read> bias: array<ST>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

var<workgroup> partial: array<f32, 256 * MAX_M>; // [m][thread]

/** Codes of the four nibbles of the low 16 bits of v, minus 8. */
fn nibbles(v: u32) -> vec4<f32> {
  return vec4<f32>((vec4<u32>(v) >> vec4<u32>(0u, 4u, 8u, 12u)) & vec4<u32>(15u)) - vec4<f32>(8.0);
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let group = wid.x + wid.y * nwg.x;
  let col = li / LANES;
  let lane = li % LANES;
  let n = group * COLS + col;
  let K32 = params.K / 32u;
  let G = params.K / GROUP;
  let ldx4 = params.ldx / 4u;
  let xOff4 = params.xOffset / 4u;
  var acc: array<f32, MAX_M>;
  for (var m = 0u; m < MAX_M; m++) { acc[m] = 0.0; }
  if (n < params.N) {
    for (var b = lane; b < K32; b += LANES) {
      let q = codes[n * K32 + b];
      let s = f32(scales[n * G + (b * 32u) / GROUP]);
      var wv: array<vec4<f32>, 8>; // the block's 32 codes − 8, in K order
      for (var j = 0u; j < 4u; j++) {
        wv[2u * j] = nibbles(q[j]);
        wv[2u * j + 1u] = nibbles(q[j] >> 16u);
      }
      for (var m = 0u; m < MAX_M; m++) {
        if (m < params.M) {
          let xb = xOff4 + m * ldx4 + b * 8u;
          var d = 0.0;
          for (var i = 0u; i < 8u; i++) { d += dot(x[xb + i], wv[i]); }
          acc[m] += d * s;
        }
      }
    }
  }
  for (var m = 0u; m < MAX_M; m++) { partial[m * 256u + li] = acc[m]; }
  workgroupBarrier();
  for (var st = LANES / 2u; st > 0u; st >>= 1u) {
    if (lane < st) {
      for (var m = 0u; m < MAX_M; m++) {
        partial[m * 256u + li] += partial[m * 256u + li + st];
      }
    }
    workgroupBarrier();
  }
  if (lane == 0u && n < params.N) {
    for (var m = 0u; m < MAX_M; m++) {
      if (m < params.M) {
        var v = partial[m * 256u + li];
        if (HAS_BIAS) { v += f32(bias[n]); }
        y[params.yOffset + m * params.ldy + n] = v;
      }
    }
  }
}
