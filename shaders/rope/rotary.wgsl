// rope/rotary — rotate-half ("NeoX") rotary embedding, in place, for all three position schemes.
//
// Why one kernel: 1-D RoPE, Qwen3-VL's interleaved MRoPE and the vision tower's 2-D RoPE differ
// only in which position axis and which inverse frequency each rotary pair j uses. The host
// builds those two small tables per RopeMode (shared/kernels/rope/tables.ts); the kernel computes
//   angle_j = f32(positions[axis_j, t]) · freq_j      (one f32 product, as torch does)
// and rotates x[t, h, j] / x[t, h, j + HALF] by it with an accurate sin/cos (common/trig.wgsl).
//
//   x row of one head:  [ x_0 … x_{HALF-1} | x_HALF … x_{HD-1} ]
//   out_j        = x_j·cos − x_{j+HALF}·sin
//   out_{j+HALF} = x_{j+HALF}·cos + x_j·sin
//
// Header from the factory: `const HALF: u32` (head_dim / 2).
// Bindings: x [T, H, HD] f32 (token t at offset + t·tokenStride), positions u32 [axes, T],
//           freqs f32 [HALF], axisOf u32 [HALF].

struct Params {
  T: u32, H: u32, tokenStride: u32, offset: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> positions: array<u32>;
@group(0) @binding(2) var<storage, read> freqs: array<f32>;
@group(0) @binding(3) var<storage, read> axisOf: array<u32>;
@group(0) @binding(4) var<uniform> params: Params;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let idx = gid.x + gid.y * nwg.x * 64u;
  let total = params.T * params.H * HALF;
  if (idx >= total) { return; }
  let j = idx % HALF;          // rotary pair
  let th = idx / HALF;         // t·H + h
  let h = th % params.H;
  let t = th / params.H;
  let pos = f32(positions[axisOf[j] * params.T + t]);
  let sc = trig_sincos(pos * freqs[j]);
  let base = params.offset + t * params.tokenStride + h * (2u * HALF);
  let x1 = x[base + j];
  let x2 = x[base + j + HALF];
  x[base + j] = x1 * sc.y - x2 * sc.x;
  x[base + j + HALF] = x2 * sc.y + x1 * sc.x;
}
