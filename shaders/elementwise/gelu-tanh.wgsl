// elementwise/gelu-tanh — y = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))   (gelu_pytorch_tanh)
//
// Why it exists: the activation of the vision tower's MLP (fc1 → GELU → fc2) in every ViT block.
//
// Evaluated as x·σ(2u) = x / (1 + e^(−2u)), u = √(2/π)(x + 0.044715x³), which is the same
// function (0.5·(1 + tanh u) = 1/(1 + e^(−2u))) but has no tanh to overflow and no cancellation in
// 1 + tanh(u) for x ≪ 0. x is clamped to [−10, 10] inside u so x³ and e^(−2u) stay finite
// (e^(87.3) < f32 max); beyond −10 the true value is below 2e−37 in magnitude and is returned as 0,
// beyond +10 it equals x to f32 precision.
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

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;

fn gelu_tanh(v: f32) -> f32 {
  let c = clamp(v, -10.0, 10.0);
  let u = SQRT_2_OVER_PI * (c + 0.044715 * c * c * c);
  return select(v / (1.0 + exp(-2.0 * u)), 0.0, v < -10.0);
}

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + li; // the dispatch may be split in (x, y)
  if (i >= params.n) { return; }
  let v = gelu_tanh(x[params.xOffset + i]);
  if (IN_PLACE) { x[params.xOffset + i] = v; } else { y[params.yOffset + i] = v; }
}
