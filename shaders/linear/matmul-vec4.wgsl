// linear/matmul-vec4 — y = x · Wᵀ (+ b), W[N, K], register-tiled with vec4 loads.
//
// Why it exists: the prefill (many rows) workhorse. A 16×16 workgroup computes a 64×64 tile of y;
// each thread owns a 4×4 block of outputs in registers, so every value read from workgroup memory
// is used 4 times. x and W are read as vec4 along K. Requires K % 4 == 0, ldx % 4 == 0 and
// xOffset % 4 == 0 (the selector falls back to matmul-tiled otherwise).
//
// Header from the factory: `alias WT`, `const HAS_BIAS: bool`.

struct Params {
  M: u32, N: u32, K: u32, ldx: u32,
  ldy: u32, xOffset: u32, yOffset: u32, _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w: array<vec4<WT>>;
@group(0) @binding(2) var<storage, read> bias: array<WT>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

const TM: u32 = 64u;       // rows of y per workgroup
const TN: u32 = 64u;       // columns of y per workgroup
const TK4: u32 = 4u;       // K step in vec4 units (16 scalars)
var<workgroup> sx: array<vec4<f32>, 256>; // [TM rows][TK4]
var<workgroup> sw: array<vec4<f32>, 256>; // [TN rows][TK4]

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let m0 = wid.y * TM;
  let n0 = wid.x * TN;
  let K4 = params.K / 4u;
  let ldx4 = params.ldx / 4u;
  let xOff4 = params.xOffset / 4u;
  var acc: array<vec4<f32>, 4>; // acc[i][j]: row m0+ly*4+i, column n0+lx*4+j
  for (var i = 0u; i < 4u; i++) { acc[i] = vec4<f32>(0.0); }
  // Loader: thread li loads row li/4, vec4 column li%4 of both tiles.
  let lr = li / TK4;
  let lc = li % TK4;
  for (var k4 = 0u; k4 < K4; k4 += TK4) {
    let kc = k4 + lc;
    let xm = m0 + lr;
    var xv = vec4<f32>(0.0);
    if (xm < params.M && kc < K4) { xv = x[xOff4 + xm * ldx4 + kc]; }
    sx[li] = xv;
    let wn = n0 + lr;
    var wv = vec4<f32>(0.0);
    if (wn < params.N && kc < K4) { wv = vec4<f32>(w[wn * K4 + kc]); }
    sw[li] = wv;
    workgroupBarrier();
    for (var kk = 0u; kk < TK4; kk++) {
      var a: array<vec4<f32>, 4>;
      var b: array<vec4<f32>, 4>;
      for (var i = 0u; i < 4u; i++) { a[i] = sx[(lid.y * 4u + i) * TK4 + kk]; }
      for (var j = 0u; j < 4u; j++) { b[j] = sw[(lid.x * 4u + j) * TK4 + kk]; }
      for (var i = 0u; i < 4u; i++) {
        acc[i] += vec4<f32>(dot(a[i], b[0]), dot(a[i], b[1]), dot(a[i], b[2]), dot(a[i], b[3]));
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + lid.y * 4u + i;
    if (m >= params.M) { continue; }
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.x * 4u + j;
      if (n >= params.N) { continue; }
      var v = acc[i][j];
      if (HAS_BIAS) { v += f32(bias[n]); }
      y[params.yOffset + m * params.ldy + n] = v;
    }
  }
}
