// elementwise/add — out = a + b
//
// Why it exists: residual connections (LLM and ViT blocks), DeepStack feature injection and the
// vision position-embedding add, when the sum goes to a third tensor. For a += b see
// elementwise/add-inplace (one read_write binding instead of two reads and a write).
//
// Header from the factory: `const WG: u32` (threads per workgroup).
// Bindings: a [n] f32 (element i at aOffset + i), b [n] f32 (bOffset + i), out [n] f32
//           (outOffset + i), which must not overlap a or b.

struct Params {
  n: u32, aOffset: u32, bOffset: u32, outOffset: u32,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + li; // the dispatch may be split in (x, y)
  if (i >= params.n) { return; }
  out[params.outOffset + i] = a[params.aOffset + i] + b[params.bOffset + i];
}
