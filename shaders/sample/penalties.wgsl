// sample/penalties — vLLM's repetition, frequency and presence penalties, in place on the logits.
//
// Why it exists: the penalties touch only the tokens a sequence has already seen (a few hundred
// or thousand distinct ids out of V = 151936), so instead of reading the [rows, V] logits back or
// scanning all of V, the host uploads the distinct seen tokens of each row and one thread updates
// each of them where the logits already are, just before argmax / top-k-top-p.
//
// Semantics (vLLM `apply_penalties`, per row, with that row's r, f, p):
//   for every token t in prompt ∪ output:   z[t] = z[t] > 0 ? z[t] / r : z[t] · r   (r = 1: off)
//   then, with c = count of t in the OUTPUT: z[t] −= f · c; z[t] −= p · (c > 0 ? 1 : 0)
// so a token seen only in the prompt gets the repetition penalty alone.
//
// Binding layout (CSR over rows; every listed id is in prompt ∪ output, so no separate flag):
//
//   offsets   [rows + 1] u32   row r owns entries offsets[r] .. offsets[r + 1] − 1
//   tokenIds  [n] u32          distinct within a row (one thread each: no write races)
//   counts    [n] u32          occurrences of that id in the row's OUTPUT (0: prompt only)
//   penalty   [rows, 3] f32    (r, f, p) per row
//
//     offsets:  0       3             7    (rows = 2)
//     tokenIds: a  b  c | d  e  f  g
//     counts:   0  2  1 | 1  0  0  4
//
// Entries past offsets[rows] are ignored (the host pads an empty list to one entry because a
// buffer cannot be empty); ids ≥ V are skipped rather than written out of bounds.
// One workgroup per row; its threads stride over the row's entries.
//
// Bindings: logits [rows, V] f32 (read_write), offsets, tokenIds, counts, penalty.

struct Params {
  rows: u32, V: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> logits: array<f32>;
@group(0) @binding(1) var<storage, read> offsets: array<u32>;
@group(0) @binding(2) var<storage, read> tokenIds: array<u32>;
@group(0) @binding(3) var<storage, read> counts: array<u32>;
@group(0) @binding(4) var<storage, read> penalty: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

const WG: u32 = 64u;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= params.rows) { return; }
  let V = params.V;
  let r = penalty[row * 3u];      // [rows, 3]
  let f = penalty[row * 3u + 1u];
  let p = penalty[row * 3u + 2u];
  let end = offsets[row + 1u];
  for (var e = offsets[row] + li; e < end; e += WG) {
    let id = tokenIds[e];
    if (id >= V) { continue; }
    let at = row * V + id; // [rows, V]
    var z = logits[at];
    if (z > 0.0) { z = z / r; } else { z = z * r; }
    let c = counts[e];
    if (c > 0u) { z = z - f * f32(c); z = z - p; } // two steps, as vLLM subtracts them
    logits[at] = z;
  }
}
