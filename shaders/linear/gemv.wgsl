// linear/gemv — y = x · Wᵀ (+ b) for decode shapes: few rows (M ≤ MAX_M), W[N, K].
//
// Why it exists: with one row per sequence the matmul is bound by reading W once. Each workgroup
// of 256 threads computes COLS output columns; LANES threads share a column (COLS × LANES = 256),
// stride through K with vec4 loads of W (each W element read exactly once), and reduce their
// partial sums in workgroup memory. All M rows are computed from the same W read. LANES is 32 for
// long rows and fewer for short ones (each lane reads at least 8 vec4s), so small K does not leave
// most threads idle. A row's result never depends on M. Requires K % 4 == 0 and aligned x.
//
// Header from the factory: `alias WT`, `const HAS_BIAS: bool`, `const MAX_M: u32`,
// `const LANES: u32`, `const COLS: u32`.

struct Params {
  M: u32, N: u32, K: u32, ldx: u32,
  ldy: u32, xOffset: u32, yOffset: u32, _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<vec4<WT>>;
@group(0) @binding(2) var<storage, read> bias: array<WT>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

var<workgroup> partial: array<f32, 256 * MAX_M>; // [m][thread]

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let group = wid.x + wid.y * nwg.x;
  let col = li / LANES;
  let lane = li % LANES;
  let n = group * COLS + col;
  let K4 = params.K / 4u;
  let ldx4 = params.ldx / 4u;
  let xOff4 = params.xOffset / 4u;
  var acc: array<f32, MAX_M>;
  for (var m = 0u; m < MAX_M; m++) { acc[m] = 0.0; }
  if (n < params.N) {
    for (var k = lane; k < K4; k += LANES) {
      let wv = vec4<f32>(w[n * K4 + k]);
      for (var m = 0u; m < MAX_M; m++) {
        if (m < params.M) { acc[m] += dot(x[xOff4 + m * ldx4 + k], wv); }
      }
    }
  }
  for (var m = 0u; m < MAX_M; m++) { partial[m * 256u + li] = acc[m]; }
  workgroupBarrier();
  // Tree reduction over the 32 lanes of each column.
  for (var s = LANES / 2u; s > 0u; s >>= 1u) {
    if (lane < s) {
      for (var m = 0u; m < MAX_M; m++) {
        partial[m * 256u + li] += partial[m * 256u + li + s];
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
