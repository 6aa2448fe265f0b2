// norm/layernorm — y[r, :] = (x[r, :] − mean)/√(var + eps) · weight[:] + bias[:]   (torch LayerNorm)
//
// Why it exists: the vision tower normalises with LayerNorm (weight and bias, eps 1e-6): twice per
// ViT block, and in the patch merger / DeepStack mergers (over D or over the concatenated 4·D).
// Mean and the biased variance (÷ n, as torch) are computed in f32, in two passes over the row
// (mean first, then Σ(x − mean)²), which avoids the cancellation of E[x²] − mean².
//
// One workgroup per row; each thread handles the strided columns li, li + WG, li + 2·WG, …
// (same layout as norm/rmsnorm), and the two sums are tree reductions in workgroup memory.
//
// Header from the factory: `alias WT` (weight and bias type, f32 or f16), `const WG: u32`
// (threads per workgroup, a power of two ≤ 256), `const IN_PLACE: bool` (write back into x; the
// y binding is then a dummy). x is read_write in both variants so that they share one layout.
// Bindings: x [rows, ldx] f32, weight [n] WT, bias [n] WT, y [rows, ldy] f32.

struct Params {
  rows: u32, n: u32, ldx: u32, ldy: u32,
  xOffset: u32, yOffset: u32, eps: f32, _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<WT>;
@group(0) @binding(2) var<storage, read> bias: array<WT>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

var<workgroup> partial: array<f32, WG>;

// Sum of `v` over the workgroup. Must be called in uniform control flow.
fn workgroupSum(v: f32, li: u32) -> f32 {
  partial[li] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { partial[li] += partial[li + s]; }
    workgroupBarrier();
  }
  let total = partial[0];
  workgroupBarrier(); // everyone has read partial[0] before the next call overwrites it
  return total;
}

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row = wid.x + wid.y * nwg.x; // the dispatch may be split in (x, y) beyond 65535 rows
  if (row >= params.rows) { return; } // the same for the whole workgroup
  let xBase = params.xOffset + row * params.ldx;
  let nf = f32(params.n);

  var s = 0.0;
  for (var c = li; c < params.n; c += WG) { s += x[xBase + c]; }
  let mean = workgroupSum(s, li) / nf;

  var q = 0.0;
  for (var c = li; c < params.n; c += WG) {
    let d = x[xBase + c] - mean;
    q += d * d;
  }
  let rstd = inverseSqrt(workgroupSum(q, li) / nf + params.eps);

  // Each thread rewrites exactly the elements it read, so IN_PLACE needs no further barrier.
  let yBase = params.yOffset + row * params.ldy;
  for (var c = li; c < params.n; c += WG) {
    let v = (x[xBase + c] - mean) * rstd * f32(weight[c]) + f32(bias[c]);
    if (IN_PLACE) { x[xBase + c] = v; } else { y[yBase + c] = v; }
  }
}
