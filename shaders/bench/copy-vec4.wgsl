// bench/copy-vec4 — the adapter's copy bandwidth (a memory-bound probe, not a model kernel).
//
// Why it exists: decode is bound by reading weights, so `vlmesh bench` states decode speed as a
// fraction of the bandwidth this trivial kernel reaches: every thread copies vec4s from `src` to
// `dst` in a grid-stride loop (coalesced: neighbouring threads touch neighbouring vec4s).
// Bytes moved = 2 · 16 · n (one read, one write per vec4).
//
// Workgroups of 256 threads, flat index `wid.x + wid.y · num_workgroups.x`.

struct Params {
  n: u32, stride: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let t = (wid.x + wid.y * nwg.x) * 256u + li;
  for (var i = t; i < params.n; i += params.stride) {
    dst[i] = src[i];
  }
}
