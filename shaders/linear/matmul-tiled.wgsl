// linear/matmul-tiled — y = x · Wᵀ (+ b), Hugging Face weight layout W[N, K].
//
// Why it exists: the variant that takes any shape (K not a multiple of 4, unaligned offsets).
// Each 16×16 workgroup computes a 16×16 tile of y, staging 16×16 tiles of x and W through
// workgroup memory. Slower than matmul-vec4; chosen only when vec4 loads are impossible.
//
// Header from the factory: `alias WT` (weight/bias element type), `const HAS_BIAS: bool`.
// Bindings: x [M, ldx] f32 (row m starts at xOffset + m·ldx), W [N, K] WT, bias [N] WT,
//           y [M, ldy] f32 (row m starts at yOffset + m·ldy).

struct Params {
  M: u32, N: u32, K: u32, ldx: u32,
  ldy: u32, xOffset: u32, yOffset: u32, _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<WT>;
@group(0) @binding(2) var<storage, read> bias: array<WT>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

const TILE: u32 = 16u;
var<workgroup> tileX: array<array<f32, 16>, 16>; // [m][k]
var<workgroup> tileW: array<array<f32, 16>, 16>; // [n][k]

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let m0 = wid.y * TILE;
  let n0 = wid.x * TILE;
  let m = m0 + lid.y;
  let n = n0 + lid.x;
  var acc = 0.0;
  for (var k0 = 0u; k0 < params.K; k0 += TILE) {
    // Thread (lx, ly) loads x[m0+ly, k0+lx] and W[n0+ly, k0+lx].
    let kk = k0 + lid.x;
    let xm = m0 + lid.y;
    let wn = n0 + lid.y;
    var xv = 0.0;
    if (xm < params.M && kk < params.K) { xv = x[params.xOffset + xm * params.ldx + kk]; }
    var wv = 0.0;
    if (wn < params.N && kk < params.K) { wv = f32(w[wn * params.K + kk]); }
    tileX[lid.y][lid.x] = xv;
    tileW[lid.y][lid.x] = wv;
    workgroupBarrier();
    for (var i = 0u; i < TILE; i++) {
      acc += tileX[lid.y][i] * tileW[lid.x][i];
    }
    workgroupBarrier();
  }
  if (m < params.M && n < params.N) {
    if (HAS_BIAS) { acc += f32(bias[n]); }
    y[params.yOffset + m * params.ldy + n] = acc;
  }
}
