// embedding/gather — out[t, :] = table[ids[t], :] for the rows of one table window
//
// Why it exists: the token embedding lookup. The real table (151936 × 2048 f16 = 622 MB) is larger
// than one storage binding, so the factory binds it window by window and dispatches this kernel
// once per window; each dispatch writes only the tokens whose id falls in its window:
//
//   table [V, D]                          ids           out [T, D]
//   ┌───────────┐ rows rowStart ..        t0: 7   ───▶  row t0 written by window 0
//   │ window 0  │      rowStart+rowCount  t1: 900 ───▶  row t1 written by window 1
//   ├───────────┤                         t2: 12  ───▶  row t2 written by window 0
//   │ window 1  │                         t3: V+5 ───▶  row t3 zeroed by the window with rowStart 0
//   └───────────┘
//
// The table is read as u32 words whatever its dtype, so one layout serves both and f16 tables
// need no shader-f16: f32 elements are bitcast, f16 elements are unpacked from pairs. Window starts
// are aligned to minStorageBufferOffsetAlignment (≥ 4 bytes), so element e of the window is in word
// e (f32) or in half (e & 1) of word e >> 1 (f16), as in the whole table.
//
// Threads: one per output element; a token's D columns span ceil(D / WG) workgroups:
//   group g = wid.x + wid.y·nwg.x  →  token t = g / chunks, column c = (g % chunks)·WG + li.
//
// Header from the factory: `const WG: u32` (threads per workgroup), `const TABLE_F16: bool`.
// Bindings: ids [≥ idsOffset + T] u32, table window [rowCount, D] (f32 or packed f16, as u32),
//           out f32 (row t at outOffset + t·ldo).

struct Params {
  tokens: u32, dim: u32, vocab: u32, rowStart: u32,
  rowCount: u32, idsOffset: u32, outOffset: u32, ldo: u32,
}

@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read> table: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let chunks = (params.dim + WG - 1u) / WG;
  let g = wid.x + wid.y * nwg.x;
  let t = g / chunks;
  let c = (g % chunks) * WG + li;
  if (t >= params.tokens || c >= params.dim) { return; }
  let id = ids[params.idsOffset + t];
  let o = params.outOffset + t * params.ldo + c;
  if (id >= params.vocab) {
    // Not a row of the table: zeros, written once (by the window that starts at row 0).
    if (params.rowStart == 0u) { out[o] = 0.0; }
    return;
  }
  if (id < params.rowStart || id - params.rowStart >= params.rowCount) { return; }
  let e = (id - params.rowStart) * params.dim + c; // element within the window, < rowCount·dim
  if (TABLE_F16) {
    out[o] = unpack2x16float(table[e >> 1u])[e & 1u];
  } else {
    out[o] = bitcast<f32>(table[e]);
  }
}
