// attention/prefill-paged — causal attention of a prompt chunk over the paged KV cache, GQA:
//   out[t, h] = softmax_j(q[t, h]·K[j, h/G]·scale, j ≤ start+t) · V[·, h/G]
// where K[j] is the cache slot of position j of sequence `seq` (see kv/append-paged):
//   slot(j) = blockTables[seq, j / blockSize]·blockSize + j % blockSize.
//
// Why it exists: chunked prefill. A long prompt is fed in chunks of T tokens at absolute
// positions start .. start+T−1; each chunk's K/V is appended to the cache first, then its
// queries attend the whole cached prefix plus the chunk, read through the block table. Same
// tiling as attention/flash-prefill (rows = (query, head-in-group) pairs of one KV head, keys in
// tiles of BK through workgroup memory, online softmax); the slots of the next key tile are
// looked up once per tile into workgroup memory.
//
//   keys  0 ……………… start−1 | start …… start+T−1       query t attends keys 0 ..= start+t
//         cached prefix     |  this chunk (appended)
//
// Header from the factory: `alias KT` (cache dtype), `const HD: u32`, `const BQ: u32`, `const BK: u32`.
// Bindings: q [T, Hq, HD] f32; blockTables [numSeqs, maxBlocks] u32;
//           kCache, vCache [numBlocks, blockSize, Hkv, HD] KT; out [T, Hq, HD] f32.
// Dispatch: (ceil(T·G / BQ), Hkv, 1). Threads li = r·BK + lane, as in attention/flash-prefill.

struct Params {
  T: u32, start: u32, Hq: u32, Hkv: u32,
  group: u32, blockSize: u32, maxBlocks: u32, numBlocks: u32,
  seq: u32, scale: f32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> blockTables: array<u32>;
@group(0) @binding(2) var<storage, read> kCache: array<KT>;
@group(0) @binding(3) var<storage, read> vCache: array<KT>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

const NT: u32 = BQ * BK;
const DPT: u32 = (HD + BK - 1u) / BK;
const KST: u32 = HD + 1u;
const MASKED: f32 = -1.0e30;
const NO_SLOT: u32 = 0xffffffffu;

var<workgroup> qTile: array<f32, BQ * HD>;   // [BQ, HD]
var<workgroup> kvTile: array<f32, BK * KST>; // [BK, KST]
var<workgroup> sTile: array<f32, BQ * BK>;
var<workgroup> pTile: array<f32, BQ * BK>;
var<workgroup> slots: array<u32, BK>;

fn slotOf(j: u32, kEnd: u32) -> u32 {
  let entry = j / params.blockSize;
  if (j >= kEnd || entry >= params.maxBlocks) { return NO_SLOT; }
  let block = blockTables[params.seq * params.maxBlocks + entry];
  if (block >= params.numBlocks) { return NO_SLOT; }
  return block * params.blockSize + j % params.blockSize;
}

fn loadTile(isV: bool, kvh: u32, li: u32) {
  for (var i = li; i < BK * HD; i += NT) {
    let c = i / HD;
    let d = i % HD;
    let slot = slots[c];
    var x = 0.0;
    if (slot != NO_SLOT) {
      let src = (slot * params.Hkv + kvh) * HD + d; // [numBlocks·blockSize, Hkv, HD]
      if (isV) { x = f32(vCache[src]); } else { x = f32(kCache[src]); }
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
  let m = min(m0 + r, rows - 1u);
  let t = m / G;
  let h = kvh * G + m % G;
  let keyEnd = params.start + t + 1u;
  let tileKeyEnd = params.start + (min(m0 + BQ, rows) - 1u) / G + 1u;

  for (var i = li; i < BQ * HD; i += NT) {
    let mm = min(m0 + i / HD, rows - 1u);
    let hh = kvh * G + mm % G;
    qTile[i] = q[((mm / G) * params.Hq + hh) * HD + i % HD]; // q [T, Hq, HD]
  }
  if (li < BK) { slots[li] = slotOf(li, tileKeyEnd); }

  var mRun = MASKED;
  var lRun = 0.0;
  var acc: array<f32, DPT>;
  for (var e = 0u; e < DPT; e++) { acc[e] = 0.0; }
  workgroupBarrier();

  for (var k0 = 0u; k0 < tileKeyEnd; k0 += BK) {
    loadTile(false, kvh, li);
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

    loadTile(true, kvh, li);
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
    // slots of the next tile: this tile's loads are done.
    if (li < BK) { slots[li] = slotOf(k0 + BK + li, tileKeyEnd); }
    workgroupBarrier();
  }

  if (rowValid) {
    let inv = 1.0 / lRun; // key 0 is always allowed: lRun ≥ 1
    for (var e = 0u; e < DPT; e++) {
      let d = lane + e * BK;
      if (d < HD) { out[(t * params.Hq + h) * HD + d] = acc[e] * inv; } // out [T, Hq, HD]
    }
  }
}
