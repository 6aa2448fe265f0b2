// elementwise/add-inplace — a += b
//
// Why it exists: the residual stream is updated in place (hidden += attn_out, hidden += mlp_out,
// hidden[visual positions] += deepstack[k]), so no third buffer is needed. A separate kernel from
// elementwise/add because the binding layout differs (a is read_write, there is no out).
//
// Header from the factory: `const WG: u32` (threads per workgroup).
// Bindings: a [n] f32 (element i at aOffset + i), b [n] f32 (bOffset + i), in different buffers.

struct Params {
  n: u32, aOffset: u32, bOffset: u32, _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + li; // the dispatch may be split in (x, y)
  if (i >= params.n) { return; }
  a[params.aOffset + i] += b[params.bOffset + i];
}
