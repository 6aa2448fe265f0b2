// sample/argmax — greedy decoding: out[row] = argmax_v logits[row, v].
//
// Why it exists: greedy generation needs only the winning token id, so the [rows, V] logits
// (600 KB per row for V = 151936) never leave the GPU; 4 bytes per row are read back.
// One workgroup of 256 threads per row: each thread scans a strided slice (coalesced loads),
// then a tree reduction in workgroup memory combines (key, index) pairs.
//
// Semantics (torch.argmax): ties go to the lowest index; −0 and +0 tie. NaN counts as larger
// than every number (torch.argmax returns the first NaN), so a row holding a NaN yields the
// index of its first NaN. Comparisons use the integer order keys of `order-key.wgsl`, which
// keep this exact even where the compiler assumes no NaN.
//
// Bindings: logits [rows, V] f32, out [rows] u32.

struct Params {
  rows: u32, V: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

const WG: u32 = 256u;
const NO_INDEX: u32 = 0xffffffffu;
var<workgroup> bestKey: array<u32, WG>;
var<workgroup> bestIdx: array<u32, WG>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= params.rows) { return; }
  let V = params.V;
  let base = row * V; // [rows, V]
  // Every real key is > 0 (the smallest, -inf, is 0x007fffff), so the first element always wins
  // over the initial state; strided indices increase, so `>` keeps the lowest index of a tie.
  var k = 0u;
  var idx = NO_INDEX;
  for (var i = li; i < V; i += WG) {
    let ki = orderKey(logits[base + i]);
    if (ki > k) { k = ki; idx = i; }
  }
  bestKey[li] = k;
  bestIdx[li] = idx;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (li < s) {
      let k2 = bestKey[li + s];
      let i2 = bestIdx[li + s];
      let k1 = bestKey[li];
      if (k2 > k1 || (k2 == k1 && i2 < bestIdx[li])) {
        bestKey[li] = k2;
        bestIdx[li] = i2;
      }
    }
    workgroupBarrier();
  }
  if (li == 0u) { out[row] = bestIdx[0]; }
}
