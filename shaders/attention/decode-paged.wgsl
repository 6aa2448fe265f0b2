// attention/decode-paged — decode attention over the paged KV cache, GQA, many sequences:
//   out[s, h] = softmax_j(q[s, h]·K_s[j, h/G]·scale, j < ctxLen[s]) · V_s[·, h/G]
// where K_s[j] is the cache slot of position j of sequence s (see kv/append-paged):
//   slot(s, j) = blockTables[s, j / blockSize]·blockSize + j % blockSize.
//
// Why it exists: in decode each sequence has one new query per head (already appended to the
// cache) and its own context length, and its K/V live in scattered blocks. One workgroup handles
// one (KV head, sequence): the G = Hq/Hkv query heads of the group share every K/V row read.
// Keys stream through workgroup memory in chunks of BK with an online softmax per head, so any
// context length runs in one pass; sequences of different lengths share one dispatch.
//
//   per chunk [k0, k0+BK) of sequence s:
//     slots[c]  = slot(s, k0+c)                       (computed one chunk ahead)
//     K rows    → kvTile [BK, HD+1]
//     scores    → pTile [GROUP, BK]       thread idx → (g = idx / BK, c = idx % BK), full dot
//     V rows    → kvTile; thread g < GROUP turns row g of pTile into probabilities, updates m, l
//     acc[g, d] = acc·alpha[g] + Σ_c p[g, c]·V[c, d]  thread li owns (g, d) = li + e·NT
//
// A sequence with ctxLen 0 (an idle batch row) writes zeros. Table entries or block ids out of
// range read zeros instead of memory outside the cache.
//
// Header from the factory: `alias KT` (cache dtype), `const HD: u32`, `const GROUP: u32`
// (query heads per KV head), `const BK: u32` (keys per chunk).
// Bindings and uniforms: shaders/common/decode-attention-io.wgsl (prepended by the factory): q, ctxLens,
//           blockTables, kCache, vCache, out, params.
// Dispatch: (Hkv, numSeqs, 1).

const NT: u32 = 128u;
const OPT: u32 = (GROUP * HD + NT - 1u) / NT; // outputs per thread
const KST: u32 = HD + 1u;
const MASKED: f32 = -1.0e30;
const NO_SLOT: u32 = 0xffffffffu;

var<workgroup> qTile: array<f32, GROUP * HD>; // [GROUP, HD]
var<workgroup> kvTile: array<f32, BK * KST>;  // [BK, KST]
var<workgroup> pTile: array<f32, GROUP * BK>; // scores, then probabilities [GROUP, BK]
var<workgroup> slots: array<u32, BK>;
var<workgroup> alphaW: array<f32, GROUP>;
var<workgroup> mW: array<f32, GROUP>;
var<workgroup> lW: array<f32, GROUP>;

fn slotOf(seq: u32, j: u32, ctxLen: u32) -> u32 {
  let entry = j / params.blockSize;
  if (j >= ctxLen || entry >= params.maxBlocks) { return NO_SLOT; }
  let block = blockTables[seq * params.maxBlocks + entry];
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
  let kvh = wid.x;
  let seq = wid.y;
  let ctxLen = ctxLens[seq];
  let qBase = (seq * params.Hq + kvh * GROUP) * HD; // heads kvh·G .. kvh·G+G−1 are contiguous

  for (var i = li; i < GROUP * HD; i += NT) { qTile[i] = q[qBase + i]; }
  if (li < GROUP) {
    mW[li] = MASKED;
    lW[li] = 0.0;
  }
  if (li < BK) { slots[li] = slotOf(seq, li, ctxLen); }
  var acc: array<f32, OPT>;
  for (var e = 0u; e < OPT; e++) { acc[e] = 0.0; }
  workgroupBarrier();

  for (var k0 = 0u; k0 < ctxLen; k0 += BK) {
    loadTile(false, kvh, li);
    workgroupBarrier();

    for (var idx = li; idx < GROUP * BK; idx += NT) {
      let g = idx / BK;
      let c = idx % BK;
      var s = MASKED;
      if (k0 + c < ctxLen) {
        var dotv = 0.0;
        for (var d = 0u; d < HD; d++) { dotv += qTile[g * HD + d] * kvTile[c * KST + d]; }
        s = dotv * params.scale;
      }
      pTile[idx] = s;
    }
    workgroupBarrier();

    loadTile(true, kvh, li);
    if (li < GROUP) {
      let g = li;
      var tileMax = MASKED;
      for (var c = 0u; c < BK; c++) { tileMax = max(tileMax, pTile[g * BK + c]); }
      let mNew = max(mW[g], tileMax);
      let alpha = exp(mW[g] - mNew);
      var sum = 0.0;
      for (var c = 0u; c < BK; c++) {
        let p = select(0.0, exp(pTile[g * BK + c] - mNew), k0 + c < ctxLen);
        pTile[g * BK + c] = p;
        sum += p;
      }
      alphaW[g] = alpha;
      mW[g] = mNew;
      lW[g] = lW[g] * alpha + sum;
    }
    workgroupBarrier();

    for (var e = 0u; e < OPT; e++) {
      let idx = li + e * NT;
      if (idx < GROUP * HD) {
        let g = idx / HD;
        let d = idx % HD;
        var a = acc[e] * alphaW[g];
        for (var c = 0u; c < BK; c++) { a += pTile[g * BK + c] * kvTile[c * KST + d]; }
        acc[e] = a;
      }
    }
    // slots of the next chunk: the loads that read this chunk's slots are done.
    if (li < BK) { slots[li] = slotOf(seq, k0 + BK + li, ctxLen); }
    workgroupBarrier();
  }

  for (var e = 0u; e < OPT; e++) {
    let idx = li + e * NT;
    if (idx < GROUP * HD) {
      let l = lW[idx / HD];
      out[qBase + idx] = select(0.0, acc[e] / l, l > 0.0); // out [numSeqs, Hq, HD]
    }
  }
}
