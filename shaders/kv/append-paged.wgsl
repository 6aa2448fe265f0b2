// kv/append-paged — writes the K and V rows of new tokens into the paged KV cache of one layer.
//
// Why it exists: the cache is a pool of fixed-size blocks shared by all sequences; a sequence
// owns a list of blocks (its block table) in any order, so sequences grow without copying and
// without reserving max_len rows each. Tokens of several sequences (a decode batch, or a prefill
// chunk) are appended in one dispatch.
//
//   cache [numBlocks, blockSize, Hkv, hd]            block tables [numSeqs, maxBlocks] (u32)
//   ┌─────────┬─────────┬─────────┬─────────┐        seq 0: [ 2, 0, … ]
//   │ block 0 │ block 1 │ block 2 │ block 3 │ …      seq 1: [ 3, 1, … ]
//   └─────────┴─────────┴─────────┴─────────┘
//   one block = blockSize slots; one slot = [Hkv, hd]
//
//   token (seq 1, pos 21), blockSize 16:
//     table row 1, entry 21 / 16 = 1   →  block id 1
//     slot = 1·16 + 21 % 16 = 21       →  k_cache[1][5] = k_new[token]
//   token (seq 0, pos 3):
//     table row 0, entry 3 / 16 = 0    →  block id 2
//     slot = 2·16 + 3 = 35             →  k_cache[2][3] = k_new[token]
//
// A token whose seq id is NO_SEQ (0xFFFFFFFF, a padding row of a batch), whose seq id is
// ≥ numSeqs, whose position lies past its table (pos / blockSize ≥ maxBlocks), or whose block id
// is ≥ numBlocks is skipped: nothing outside the cache is ever written.
//
// Header from the factory: `alias KT` (cache element type, f32 or f16).
// Bindings: kNew, vNew [T, Hkv, hd] f32; seqIds [T] u32; positions [T] u32;
//           blockTables [numSeqs, maxBlocks] u32; kCache, vCache [numBlocks, blockSize, Hkv, hd] KT.
// Dispatch: one thread per element of [T, Hkv·hd], flat index = (wid.x + wid.y·nwg.x)·256 + li.

struct Params {
  T: u32, rowLen: u32, blockSize: u32, maxBlocks: u32,
  numSeqs: u32, numBlocks: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<storage, read> kNew: array<f32>;
@group(0) @binding(1) var<storage, read> vNew: array<f32>;
@group(0) @binding(2) var<storage, read> seqIds: array<u32>;
@group(0) @binding(3) var<storage, read> positions: array<u32>;
@group(0) @binding(4) var<storage, read> blockTables: array<u32>;
@group(0) @binding(5) var<storage, read_write> kCache: array<KT>;
@group(0) @binding(6) var<storage, read_write> vCache: array<KT>;
@group(0) @binding(7) var<uniform> params: Params;

const WG: u32 = 256u;

@compute @workgroup_size(WG, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + li;
  if (i >= params.T * params.rowLen) { return; }
  let tok = i / params.rowLen; // [T, Hkv·hd]
  let e = i % params.rowLen;
  let seq = seqIds[tok];
  let pos = positions[tok];
  let entry = pos / params.blockSize;
  if (seq >= params.numSeqs || entry >= params.maxBlocks) { return; } // also NO_SEQ
  let block = blockTables[seq * params.maxBlocks + entry];
  if (block >= params.numBlocks) { return; }
  let slot = block * params.blockSize + pos % params.blockSize;
  let dst = slot * params.rowLen + e; // [numBlocks·blockSize, Hkv·hd]
  kCache[dst] = KT(kNew[i]);
  vCache[dst] = KT(vNew[i]);
}
