// attention/vision-varlen — bidirectional block-diagonal attention of the vision tower:
//   out[p, h] = softmax_j(q[p, h]·k[j, h]·scale, j in segment(p)) · v[·, h]
//
// Why it exists: the ViT attends every patch to every patch of its own image, or of its own
// temporal patch of a video, and to nothing else (HF `cu_seqlens`). Concatenating all images
// into one [P, H, hd] tensor and masking by segment gives one dispatch per layer for any mix of
// images and videos. No causal mask, no GQA. Keys stream through workgroup memory in tiles of
// BK with an online softmax, as in attention/flash-prefill; a workgroup's tile of BQ patches
// only visits the keys of the segments its rows belong to.
//
//   cu_seqlens = [0, 5, 12, 20]      patches 0..4 | 5..11 | 12..19     (3 segments, P = 20)
//   a tile with rows 3..8 (segments 0 and 1) visits keys 0 .. 11; row 3 masks keys 5..11,
//   row 6 masks keys 0..4.
//
// Header from the factory: `const HD: u32`, `const BQ: u32` (rows per workgroup), `const BK: u32`.
// Bindings: q, k, v [P, H, HD] f32; cu_seqlens [nseg+1] u32 (0 = cu[0] < … < cu[nseg] = P);
//           out [P, H, HD] f32.
// Dispatch: (ceil(P / BQ), H, 1). Threads li = r·BK + lane, as in attention/flash-prefill.

struct Params {
  P: u32, H: u32, nseg: u32, scale: f32,
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> cuSeqlens: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

const NT: u32 = BQ * BK;
const DPT: u32 = (HD + BK - 1u) / BK;
const KST: u32 = HD + 1u;
const MASKED: f32 = -1.0e30;

var<workgroup> qTile: array<f32, BQ * HD>;   // [BQ, HD]
var<workgroup> kvTile: array<f32, BK * KST>; // [BK, KST]
var<workgroup> sTile: array<f32, BQ * BK>;
var<workgroup> pTile: array<f32, BQ * BK>;

// The segment s with cu[s] ≤ p < cu[s+1] (binary search; p < P).
fn segmentOf(p: u32) -> u32 {
  var lo = 0u;
  var hi = params.nseg;
  while (hi - lo > 1u) {
    let mid = (lo + hi) / 2u;
    if (cuSeqlens[mid] <= p) { lo = mid; } else { hi = mid; }
  }
  return lo;
}

fn loadTile(isV: bool, k0: u32, kEnd: u32, h: u32, li: u32) {
  for (var i = li; i < BK * HD; i += NT) {
    let c = i / HD;
    let d = i % HD;
    let j = k0 + c;
    var x = 0.0;
    if (j < kEnd) {
      let src = (j * params.H + h) * HD + d; // [P, H, HD]
      if (isV) { x = v[src]; } else { x = k[src]; }
    }
    kvTile[c * KST + d] = x;
  }
}

@compute @workgroup_size(NT, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let h = wid.y;
  let p0 = wid.x * BQ;
  let r = li / BK;
  let lane = li % BK;
  let rowValid = p0 + r < params.P;
  let p = min(p0 + r, params.P - 1u);
  let seg = segmentOf(p);
  let keyBegin = cuSeqlens[seg];
  let keyEnd = cuSeqlens[seg + 1u];
  // Keys of the tile (workgroup-uniform): from its first row's segment to its last row's.
  let tileKeyBegin = cuSeqlens[segmentOf(p0)];
  let tileKeyEnd = cuSeqlens[segmentOf(min(p0 + BQ, params.P) - 1u) + 1u];

  for (var i = li; i < BQ * HD; i += NT) {
    let pp = min(p0 + i / HD, params.P - 1u);
    qTile[i] = q[(pp * params.H + h) * HD + i % HD];
  }

  var mRun = MASKED;
  var lRun = 0.0;
  var acc: array<f32, DPT>;
  for (var e = 0u; e < DPT; e++) { acc[e] = 0.0; }

  for (var k0 = tileKeyBegin; k0 < tileKeyEnd; k0 += BK) {
    loadTile(false, k0, tileKeyEnd, h, li);
    workgroupBarrier();

    let j = k0 + lane;
    let keyOk = j >= keyBegin && j < keyEnd;
    var s = MASKED;
    if (keyOk) {
      var dotv = 0.0;
      for (var d = 0u; d < HD; d++) { dotv += qTile[r * HD + d] * kvTile[lane * KST + d]; }
      s = dotv * params.scale;
    }
    sTile[li] = s;
    workgroupBarrier();

    loadTile(true, k0, tileKeyEnd, h, li);
    var tileMax = MASKED;
    for (var c = 0u; c < BK; c++) { tileMax = max(tileMax, sTile[r * BK + c]); }
    // A row whose segment starts after this tile keeps mRun = MASKED, l = 0, acc = 0 here.
    let mNew = max(mRun, tileMax);
    let alpha = exp(mRun - mNew);
    pTile[li] = select(0.0, exp(s - mNew), keyOk);
    mRun = mNew;
    lRun *= alpha;
    for (var e = 0u; e < DPT; e++) { acc[e] *= alpha; }
    workgroupBarrier();

    for (var c = 0u; c < BK; c++) {
      let pc = pTile[r * BK + c];
      lRun += pc;
      for (var e = 0u; e < DPT; e++) {
        let d = lane + e * BK;
        if (d < HD) { acc[e] += pc * kvTile[c * KST + d]; }
      }
    }
    workgroupBarrier();
  }

  if (rowValid) {
    let inv = select(0.0, 1.0 / lRun, lRun > 0.0); // an empty segment cannot hold p: lRun ≥ 1
    for (var e = 0u; e < DPT; e++) {
      let d = lane + e * BK;
      if (d < HD) { out[(p * params.H + h) * HD + d] = acc[e] * inv; }
    }
  }
}
