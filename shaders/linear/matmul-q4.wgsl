// linear/matmul-q4 — y = x · Wᵀ (+ b) for prefill shapes with a q4 weight W[N, K]: 4-bit codes
// packed 8 per u32 along K, one scale per GROUP elements (format: shared/io/quant-q4.ts).
//
// Why it exists: the prefill counterpart of gemv-q4. It is matmul-vec4 with the W tile loader
// replaced: each thread reads 4 codes (half a u32) and their group's scale, dequantizes them and
// stores f32 values in workgroup memory; the 64×64 register-tiled inner loop is unchanged. W is
// read from memory as 4.5 bits per weight and never exists dequantized outside workgroup memory.
// Requires K % 32 == 0, GROUP % 32 == 0, ldx % 4 == 0, xOffset % 4 == 0.
//
// Header from the factory: `alias ST` (scale and bias type), `const HAS_BIAS: bool`,
// `const GROUP: u32`.

struct Params {
  M: u32, N: u32, K: u32, ldx: u32,
  ldy: u32, xOffset: u32, yOffset: u32, _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> codes: array<u32>; // [N, K/8]
@group(0) @binding(2) var<storage, read> scales: array<ST>; // [N, K/GROUP]
@group(0) @binding(3) var<storage, read> bias: array<ST>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

const TM: u32 = 64u;       // rows of y per workgroup
const TN: u32 = 64u;       // columns of y per workgroup
const TK4: u32 = 4u;       // K step in vec4 units (16 scalars)
var<workgroup> sx: array<vec4<f32>, 256>; // [TM rows][TK4]
var<workgroup> sw: array<vec4<f32>, 256>; // [TN rows][TK4], dequantized

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let m0 = wid.y * TM;
  let n0 = wid.x * TN;
  let K4 = params.K / 4u;
  let K8 = params.K / 8u;
  let G = params.K / GROUP;
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
    if (wn < params.N && kc < K4) {
      // Elements 4·kc .. 4·kc+3: nibbles 0..3 or 4..7 of word kc/2.
      let word = codes[wn * K8 + kc / 2u] >> ((kc % 2u) * 16u);
      let q = (vec4<u32>(word) >> vec4<u32>(0u, 4u, 8u, 12u)) & vec4<u32>(15u);
      wv = (vec4<f32>(q) - vec4<f32>(8.0)) * f32(scales[wn * G + (kc * 4u) / GROUP]);
    }
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
