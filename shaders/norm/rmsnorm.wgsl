// norm/rmsnorm — y[r, :] = x[r, :] · 1/√(mean(x[r, :]²) + eps) · weight[:]   (Qwen3 RMSNorm)
//
// Why it exists: the LLM normalises with RMSNorm before attention and before the MLP of every
// decoder layer, after the last layer, and per head on q and k (q_norm / k_norm over head_dim,
// with rows = tokens·heads and n = head_dim). As in Hugging Face, the mean of squares and the
// scaling are done in f32, then the weight multiplies the normalised value.
//
// One workgroup per row. Each thread sums the squares of a strided slice of the row, a tree
// reduction in workgroup memory gives the row's sum, then each thread writes its slice:
//
//   row r of x:  xOffset + r·ldx + [ 0   1  …  WG-1 | WG  WG+1 … | 2·WG … n-1 ]
//   thread:                        [ 0   1  …  WG-1 | 0   1    … | 0    …     ]
//
// Header from the factory: `alias WT` (weight type, f32 or f16), `const WG: u32` (threads per
// workgroup, a power of two ≤ 256), `const IN_PLACE: bool` (write the result back into x; the y
// binding is then a dummy). x is read_write in both variants so that they share one layout.
// Bindings: x [rows, ldx] f32, weight [n] WT, y [rows, ldy] f32.

struct Params {
  rows: u32, n: u32, ldx: u32, ldy: u32,
  xOffset: u32, yOffset: u32, eps: f32, _pad: u32,
}

@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<WT>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

var<workgroup> partial: array<f32, WG>;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row = wid.x + wid.y * nwg.x; // the dispatch may be split in (x, y) beyond 65535 rows
  if (row >= params.rows) { return; } // the same for the whole workgroup
  let xBase = params.xOffset + row * params.ldx;

  var acc = 0.0;
  for (var c = li; c < params.n; c += WG) {
    let v = x[xBase + c];
    acc += v * v;
  }
  partial[li] = acc;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) { partial[li] += partial[li + s]; }
    workgroupBarrier();
  }
  let scale = inverseSqrt(partial[0] / f32(params.n) + params.eps);

  // Each thread rewrites exactly the elements it read, so IN_PLACE needs no further barrier.
  let yBase = params.yOffset + row * params.ldy;
  for (var c = li; c < params.n; c += WG) {
    let v = (x[xBase + c] * scale) * f32(weight[c]);
    if (IN_PLACE) { x[xBase + c] = v; } else { y[yBase + c] = v; }
  }
}
