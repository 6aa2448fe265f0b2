// common/decode-attention-io — the bindings and uniforms every decode-attention kernel takes
// (attention/decode-paged, attention/decode-subgroup; include, no entry point). One definition,
// so the kernels share `resolveDecode`'s bindings and uniforms (shared/kernels/attention).
//
// Needs `alias KT` (the cache dtype) before it.
// Bindings: q [numSeqs, Hq, HD] f32; ctxLens [numSeqs] u32; blockTables [numSeqs, maxBlocks] u32;
//           kCache, vCache [numBlocks, blockSize, Hkv, HD] KT; out [numSeqs, Hq, HD] f32.

struct Params {
  Hq: u32, Hkv: u32, blockSize: u32, maxBlocks: u32,
  numBlocks: u32, scale: f32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> ctxLens: array<u32>;
@group(0) @binding(2) var<storage, read> blockTables: array<u32>;
@group(0) @binding(3) var<storage, read> kCache: array<KT>;
@group(0) @binding(4) var<storage, read> vCache: array<KT>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;
