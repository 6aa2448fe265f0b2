// linear/matmul-rows — y = x · Wᵀ (+ b), W[N, K], for adapters that run compute on CPU cores
// (lavapipe): no workgroup memory, no barriers, few loads per multiply-add.
//
// Why it exists: a CPU adapter runs the invocations of a subgroup as the lanes of SIMD registers,
// and every per-lane load is a gather — even a load whose address is the same in every lane.
// Tiling through workgroup memory (matmul-vec4) adds loads and barrier switches and buys nothing,
// since W and x sit in the CPU caches anyway. Here a workgroup owns R rows of y and WG·C columns;
// a lane keeps R×C sums in registers. Per block of SG values along K (SG = subgroup size), lane
// s loads element s of the block of each of the R x rows — one load per lane, no duplicates — and
// the lanes pass them around with subgroupShuffle (a register broadcast on a SIMD CPU); W is read
// per lane as vec4s (f16 weights as two u32 words, unpacked: a 32-bit gather is cheap where a
// 16-bit one is not).
//
// Every output is the same sequential chain of products along K whatever R and C are, so decode
// rows computed in groups of any size give the same bits (batch invariance). Requires K % 4 == 0,
// ldx % 4 == 0, xOffset % 4 == 0, a fixed subgroup size SG (4, 8 or 16) and WG % SG == 0.
//
// Header from the factory: `enable subgroups`, `alias WT`, `alias WV` (the W element: vec4<f32>
// or vec2<u32>), `fn loadW(i: u32) -> vec4<f32>`, `const HAS_BIAS: bool`, `const WG: u32`,
// `const R: u32`, `const C: u32`, `const SG: u32`.

struct Params {
  M: u32, N: u32, K: u32, ldx: u32,
  ldy: u32, xOffset: u32, yOffset: u32, _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<WV>;
@group(0) @binding(2) var<storage, read> bias: array<WT>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

const Q: u32 = SG / 4u; // vec4s of K per block

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_invocation_id) sid: u32) {
  let m0 = wid.y * R;
  let n0 = wid.x * (WG * C) + li;
  let K4 = params.K / 4u;
  let ldx4 = params.ldx / 4u;
  let xOff4 = params.xOffset / 4u;
  // Lanes past the edge read the last row / column (in bounds), take part in the shuffles and
  // store nothing.
  var wRow: array<u32, C>;
  for (var c = 0u; c < C; c++) { wRow[c] = min(n0 + c * WG, params.N - 1u) * K4; }
  var xRow: array<u32, R>;
  for (var r = 0u; r < R; r++) { xRow[r] = xOff4 + min(m0 + r, params.M - 1u) * ldx4; }
  var acc: array<array<f32, R>, C>;
  for (var c = 0u; c < C; c++) { for (var r = 0u; r < R; r++) { acc[c][r] = 0.0; } }
  let sq = sid / 4u;   // which vec4 of the block this lane loads
  let comp = sid % 4u; // which element of it
  for (var kb = 0u; kb < K4; kb += Q) {
    // Past the end of K (K/4 not a multiple of Q) x and W count as zeros.
    let live = kb + sq < K4;
    let kx = select(kb, kb + sq, live);
    var xl: array<f32, R>;
    for (var r = 0u; r < R; r++) { xl[r] = select(0.0, x[xRow[r] + kx][comp], live); }
    for (var q = 0u; q < Q; q++) {
      let kq = kb + q;
      var wv: array<vec4<f32>, C>;
      for (var c = 0u; c < C; c++) { wv[c] = select(vec4<f32>(0.0), loadW(wRow[c] + min(kq, K4 - 1u)), kq < K4); }
      for (var j = 0u; j < 4u; j++) {
        for (var r = 0u; r < R; r++) {
          let a = subgroupShuffle(xl[r], q * 4u + j);
          for (var c = 0u; c < C; c++) { acc[c][r] += a * wv[c][j]; }
        }
      }
    }
  }
  for (var c = 0u; c < C; c++) {
    let n = n0 + c * WG;
    if (n >= params.N) { continue; }
    for (var r = 0u; r < R; r++) {
      let m = m0 + r;
      if (m >= params.M) { break; }
      var v = acc[c][r];
      if (HAS_BIAS) { v += f32(bias[n]); }
      y[params.yOffset + m * params.ldy + n] = v;
    }
  }
}
