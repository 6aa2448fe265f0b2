// elementwise/silu-mul — out = silu(gate) · up = gate·σ(gate) · up   (SwiGLU)
//
// Why it exists: the LLM MLP is down(silu(gate_proj x) · up_proj x); this joins the two
// projections' outputs [T, I] (separate tensors, as Hugging Face keeps gate_proj and up_proj).
//
// silu(g) = g / (1 + e^(−g)). For g < −80, e^(−g) would overflow f32; the true value there is
// below 2e−33 in magnitude and 0 is written.
//
// Header from the factory: `const WG: u32` (threads per workgroup).
// Bindings: gate [n] f32 (element i at gateOffset + i), up [n] f32 (upOffset + i),
//           out [n] f32 (outOffset + i), which must not overlap gate or up.

struct Params {
  n: u32, gateOffset: u32, upOffset: u32, outOffset: u32,
}

@group(0) @binding(0) var<storage, read> gate: array<f32>;
@group(0) @binding(1) var<storage, read> up: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

fn silu(g: f32) -> f32 {
  return select(g / (1.0 + exp(-max(g, -80.0))), 0.0, g < -80.0);
}

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + li; // the dispatch may be split in (x, y)
  if (i >= params.n) { return; }
  out[params.outOffset + i] = silu(gate[params.gateOffset + i]) * up[params.upOffset + i];
}
