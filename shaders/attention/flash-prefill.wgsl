// attention/flash-prefill — causal attention of a prompt (or a prompt chunk) with GQA:
//   out[t, h] = softmax_j(q[t, h]·k[j, h/G]·scale, j ≤ S−T+t) · v[·, h/G]      (G = Hq / Hkv)
//
// Why it exists: prefill attends T queries to S ≥ T contiguous keys. The [T, S] score matrix is
// never formed: keys stream through workgroup memory in tiles of BK and each query row keeps an
// online softmax (running max m, running sum l, rescaled accumulator), so memory stays O(T·hd)
// for any S. One K/V tile serves every query head of a GQA group: a workgroup's rows are
// (query, head-in-group) pairs of one KV head, so K and V are read from memory once per tile of
// BQ rows instead of once per query head.
//
// The T queries are the last T of the S key positions: query t sits at absolute position
// S−T+t and attends keys 0 ..= S−T+t.
//
// Header from the factory: `const HD: u32` (head_dim), `const BQ: u32` (rows per workgroup),
// `const BK: u32` (keys per tile = threads per row).
// Bindings: q [T, Hq, HD] f32, k [S, Hkv, HD] f32, v [S, Hkv, HD] f32, out [T, Hq, HD] f32.
// Dispatch: (ceil(T·G / BQ), Hkv, 1).
//
//   rows of the workgroup (x, kvh), G = 2:      threads: li = r·BK + lane
//     row r:   0       1       2       3   …      score phase: lane scores key k0+lane for row r
//     m:     x·BQ   x·BQ+1  x·BQ+2  x·BQ+3        output phase: lane owns dims lane, lane+BK, …
//     t:      m/G     …                           of row r
//     head:  kvh·G + m%G
//
//   per key tile [k0, k0+BK):  K → kvTile | scores → sTile | V → kvTile, p → pTile | acc += p·V

struct Params {
  T: u32, S: u32, Hq: u32, Hkv: u32,
  group: u32, scale: f32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

const NT: u32 = BQ * BK;
const DPT: u32 = (HD + BK - 1u) / BK; // output dims per thread
const KST: u32 = HD + 1u;             // padded K/V row stride: lanes read different rows conflict-free
const MASKED: f32 = -1.0e30;          // finite "−∞": exp(MASKED − m) is 0 and MASKED − MASKED is 0

var<workgroup> qTile: array<f32, BQ * HD>;   // [BQ, HD]
var<workgroup> kvTile: array<f32, BK * KST>; // [BK, KST]: K, then V, of keys k0 .. k0+BK−1
var<workgroup> sTile: array<f32, BQ * BK>;   // scores [BQ, BK]
var<workgroup> pTile: array<f32, BQ * BK>;   // probabilities [BQ, BK]

// Loads K or V rows of keys k0 .. k0+BK−1 of KV head kvh ([S, Hkv, HD]) into kvTile; 0 past S.
fn loadTile(isV: bool, k0: u32, kvh: u32, li: u32) {
  for (var i = li; i < BK * HD; i += NT) {
    let c = i / HD;
    let d = i % HD;
    let j = k0 + c;
    var x = 0.0;
    if (j < params.S) {
      let src = (j * params.Hkv + kvh) * HD + d;
      if (isV) { x = v[src]; } else { x = k[src]; }
    }
    kvTile[c * KST + d] = x;
  }
}

@compute @workgroup_size(NT, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let G = params.group;
  let rows = params.T * G;
  let kvh = wid.y;
  let m0 = wid.x * BQ;
  let r = li / BK;
  let lane = li % BK;
  let rowValid = m0 + r < rows;
  let m = min(m0 + r, rows - 1u); // padding rows shadow the last row and write nothing
  let t = m / G;
  let h = kvh * G + m % G;
  let past = params.S - params.T;
  let keyEnd = past + t + 1u; // this row attends keys [0, keyEnd)
  // Keys any row of the tile needs (workgroup-uniform): those of its last row.
  let tileKeyEnd = past + (min(m0 + BQ, rows) - 1u) / G + 1u;

  for (var i = li; i < BQ * HD; i += NT) {
    let mm = min(m0 + i / HD, rows - 1u);
    let hh = kvh * G + mm % G;
    qTile[i] = q[((mm / G) * params.Hq + hh) * HD + i % HD]; // q [T, Hq, HD]
  }

  var mRun = MASKED;
  var lRun = 0.0;
  var acc: array<f32, DPT>;
  for (var e = 0u; e < DPT; e++) { acc[e] = 0.0; }

  for (var k0 = 0u; k0 < tileKeyEnd; k0 += BK) {
    loadTile(false, k0, kvh, li);
    workgroupBarrier();

    let j = k0 + lane;
    let keyOk = j < keyEnd;
    var s = MASKED;
    if (keyOk) {
      var dotv = 0.0;
      for (var d = 0u; d < HD; d++) { dotv += qTile[r * HD + d] * kvTile[lane * KST + d]; }
      s = dotv * params.scale;
    }
    sTile[li] = s;
    workgroupBarrier();

    loadTile(true, k0, kvh, li);
    var tileMax = MASKED;
    for (var c = 0u; c < BK; c++) { tileMax = max(tileMax, sTile[r * BK + c]); }
    let mNew = max(mRun, tileMax);
    let alpha = exp(mRun - mNew);
    pTile[li] = select(0.0, exp(s - mNew), keyOk);
    mRun = mNew;
    lRun *= alpha;
    for (var e = 0u; e < DPT; e++) { acc[e] *= alpha; }
    workgroupBarrier();

    for (var c = 0u; c < BK; c++) {
      let p = pTile[r * BK + c];
      lRun += p;
      for (var e = 0u; e < DPT; e++) {
        let d = lane + e * BK;
        if (d < HD) { acc[e] += p * kvTile[c * KST + d]; }
      }
    }
    workgroupBarrier();
  }

  if (rowValid) {
    let inv = 1.0 / lRun; // lRun ≥ 1: key 0 is always allowed and holds the running max once
    for (var e = 0u; e < DPT; e++) {
      let d = lane + e * BK;
      if (d < HD) { out[(t * params.Hq + h) * HD + d] = acc[e] * inv; } // out [T, Hq, HD]
    }
  }
}
