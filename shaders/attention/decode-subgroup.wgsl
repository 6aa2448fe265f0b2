// attention/decode-subgroup — decode attention over the paged KV cache (same contract as
// attention/decode-paged) for adapters that run compute shaders on CPU cores (lavapipe):
//   out[s, h] = softmax_j(q[s, h]·K_s[j, h/G]·scale, j < ctxLen[s]) · V_s[·, h/G]
//   slot(s, j) = blockTables[s, j / blockSize]·blockSize + j % blockSize
//
// Why it exists: on a CPU adapter a workgroup of many invocations runs as a loop of SIMD batches
// with a switch at every barrier, and decode-paged's chunked workgroup-memory tiles pay that
// switch four times per chunk (measured there: 2.8 ms per layer of Qwen3-VL-2B at 129 keys, 14×
// the time its K/V bytes need). Here a workgroup is ONE subgroup, with no workgroup memory and no
// barrier: each lane holds DPL = HD / SG dimensions of the query head and of its output, a key's
// score is the subgroup sum of the lanes' partial dots, and the online softmax state (m, l) is the
// same in every lane. Lane i holds dims i, i + SG, i + 2·SG, …: the SG lanes (one SIMD vector on
// a CPU) read SG consecutive values of a K or V row at each step, one contiguous load.
//
//   lane i of the workgroup for (head h, sequence s):   dims {i + e·SG : e < DPL}
//   per key j < ctxLen:
//     s     = subgroupAdd(q_i · K[j]_i) · scale
//     m'    = max(m, s);  α = e^(m − m');  p = e^(s − m')
//     l     = l·α + p;  acc_i = acc_i·α + p · V[j]_i
//
// A sequence with ctxLen 0 writes zeros. Table entries or block ids out of range read zeros, as
// in decode-paged. The query heads of a KV group read the same K/V rows (the CPU caches share
// them).
//
// Header from the factory: `enable subgroups;`, `alias KT` (cache dtype), `const HD: u32`,
// `const GROUP: u32` (query heads per KV head), `const SG: u32` (the fixed subgroup size; HD is a
// multiple of it).
// Bindings and uniforms: shaders/common/decode-attention-io.wgsl (prepended by the factory): q, ctxLens,
//           blockTables, kCache, vCache, out, params.
// Dispatch: (Hq, numSeqs, 1).

const DPL: u32 = HD / SG; // dimensions per lane
const MASKED: f32 = -1.0e30;
const NO_SLOT: u32 = 0xffffffffu;

fn slotOf(seq: u32, j: u32) -> u32 {
  let entry = j / params.blockSize;
  if (entry >= params.maxBlocks) { return NO_SLOT; }
  let block = blockTables[seq * params.maxBlocks + entry];
  if (block >= params.numBlocks) { return NO_SLOT; }
  return block * params.blockSize + j % params.blockSize;
}

@compute @workgroup_size(SG, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
  let h = wid.x;
  let seq = wid.y;
  let kvh = h / GROUP;
  let ctxLen = ctxLens[seq];
  let qBase = (seq * params.Hq + h) * HD + lane; // this lane's dims of q[seq, h]: qBase + e·SG

  var qv: array<f32, DPL>;
  var acc: array<f32, DPL>;
  for (var d = 0u; d < DPL; d++) {
    qv[d] = q[qBase + d * SG];
    acc[d] = 0.0;
  }
  var m = MASKED;
  var l = 0.0;
  // One key at a time: private arrays indexed by a key counter (a block of keys per softmax
  // update) measured slower on lavapipe than the two exps per key this costs.
  for (var j = 0u; j < ctxLen; j++) {
    let slot = slotOf(seq, j);
    let base = (slot * params.Hkv + kvh) * HD + lane; // [numBlocks·blockSize, Hkv, HD]
    var part = 0.0;
    if (slot != NO_SLOT) {
      for (var d = 0u; d < DPL; d++) { part += qv[d] * f32(kCache[base + d * SG]); }
    }
    let sj = subgroupAdd(part) * params.scale;
    let mNew = max(m, sj);
    let alpha = exp(m - mNew);
    let p = exp(sj - mNew);
    l = l * alpha + p;
    if (slot != NO_SLOT) {
      for (var d = 0u; d < DPL; d++) { acc[d] = acc[d] * alpha + p * f32(vCache[base + d * SG]); }
    } else {
      for (var d = 0u; d < DPL; d++) { acc[d] *= alpha; }
    }
    m = mNew;
  }

  for (var d = 0u; d < DPL; d++) {
    out[qBase + d * SG] = select(0.0, acc[d] / l, l > 0.0); // out [numSeqs, Hq, HD]
  }
}
