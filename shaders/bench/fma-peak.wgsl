// bench/fma-peak — the adapter's peak f32 FMA throughput (a compute-bound probe, not a model kernel).
//
// Why it exists: `vlmesh bench` states every kernel's speed as a fraction of what the adapter can
// do. Each thread runs CHAINS independent vec4 fma chains for `iters` iterations (no memory
// traffic inside the loop, enough independent work to hide FMA latency), then writes one vec4 so
// the compiler cannot drop the loop. FLOPs = threads · iters · CHAINS · 4 lanes · 2.
//
// Header from the factory: `const CHAINS: u32` (8). Workgroups of 256 threads, flat index
// `wid.x + wid.y · num_workgroups.x`.

struct Params {
  iters: u32, threads: u32, seed: f32, _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(1) var<uniform> params: Params;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let t = (wid.x + wid.y * nwg.x) * 256u + li;
  if (t >= params.threads) { return; }
  let base = f32(t % 1024u) * 1e-6 + params.seed;
  // Multiplier just below 1 and a small addend: values stay finite for any iteration count.
  let m = vec4<f32>(0.9999, 0.99991, 0.99992, 0.99993);
  let c = vec4<f32>(params.seed * 1e-3);
  var a: array<vec4<f32>, CHAINS>;
  for (var j = 0u; j < CHAINS; j++) { a[j] = vec4<f32>(base + f32(j)); }
  for (var i = 0u; i < params.iters; i++) {
    // CHAINS independent chains; the constant trip count lets the compiler unroll into registers.
    for (var j = 0u; j < CHAINS; j++) { a[j] = fma(a[j], m, c); }
  }
  var s = vec4<f32>(0.0);
  for (var j = 0u; j < CHAINS; j++) { s += a[j]; }
  out[t] = s;
}
