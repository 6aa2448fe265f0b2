// sample/top-k-top-p — out[row] = a token drawn from softmax(top-p(top-k(logits[row] / T))).
//
// Why sampling runs on the GPU: the logits of one step are [rows, V] floats (600 KB per row for
// V = 151936). Reading them back to sample on the host would stall every generated token on a
// large copy; here only the sampled id (4 bytes per row) crosses. The randomness stays on the
// host: it draws u ∈ [0, 1) per row from a seeded PRNG (shared/kernels/sample/rng.ts) and passes
// it in `uniforms`, so a seed reproduces a generation exactly on a given device.
//
// Semantics (Hugging Face warpers, applied in this order):
//   1. temperature: z = logits / T.
//   2. top-k (off when topK == 0 or topK >= V): keep every token with z ≥ the k-th largest z
//      (ties with the k-th value are kept, like `scores < topk(scores, k)[..., -1]`).
//   3. top-p (off when topP >= 1): with probabilities of the top-k survivors, HF sorts ascending
//      and removes tokens whose cumulative probability is ≤ 1 − p, always keeping the largest.
//      Equivalently: keep a token iff the mass of the tokens strictly above it is < p.
//   4. sample by inverse CDF over the kept tokens in index order: the first token whose running
//      sum of exp(z − max) exceeds u·Σ.
// Exact ties at the top-p boundary: HF's sort keeps a sort-order-dependent subset of tokens that
// share the boundary value; this kernel keeps all of them (a threshold on the value), so the
// kept mass can exceed HF's by the tied tokens. With distinct logits the two agree.
//
// Algorithm, one workgroup of 256 threads per row, every pass re-reading the row:
//   max:    1 pass: max and min order key (see order-key.wgsl) → m = max z.
//   top-k:  value-space binary search on the order key for the largest K with
//           count(key ≥ K) ≥ k, which is exactly the k-th largest value.
//   top-p:  1 pass for Σ = Σ_kept exp(z − m), then the same search for the smallest K with
//           mass(key > K) < p·Σ, which is the smallest kept value. (Float sums in a fixed order
//           are monotone in the set summed, so the predicate is monotone and the search exact.)
//   Each search step halves the key interval [lo, hi] that holds the answer and, in the same
//   pass, snaps the kept half to the token keys inside it:
//
//     lo ·········· mid ·········· hi       answer in [mid, hi] → lo = min token key in [mid, hi]
//          x   x        x    x  x           answer in [lo, mid) → hi = max token key in [lo, mid)
//
//   so it ends (lo == hi) as soon as one token value is left: a few passes when the boundary
//   sits in the sparse tail of the distribution, at most 32.
//   sample: each thread sums a contiguous chunk of V/256 indices; thread 0 scans the 256 chunk
//           sums in order (a sequential scan: its running sums are monotone, so exactly one chunk
//           owns the target); the owner scans its chunk with the same additions it summed with.
//
//     chunk sums  s0   s1   s2 …  s255      target = u·(s0 + s1 + …)
//     running     0 ── s0 ── s0+s1 ── …     owner: the chunk whose [run, run + s) holds target
//
// Rows whose scaled maximum is not finite (all −inf, a NaN, or +inf after scaling) have nothing
// to sample from; they get NO_TOKEN (0xffffffff), which the host turns into an error.
//
// Bindings: logits [rows, V] f32, uniforms [rows] f32 (u ∈ [0, 1)), out [rows] u32.

struct Params {
  rows: u32, V: u32, topK: u32, _pad0: u32,
  temperature: f32, topP: f32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> uniforms: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<uniform> params: Params;

const WG: u32 = 256u;
const NO_TOKEN: u32 = 0xffffffffu;

var<workgroup> redF: array<f32, WG>;
var<workgroup> redC: array<u32, WG>;
var<workgroup> redMin: array<u32, WG>;
var<workgroup> redMax: array<u32, WG>;
var<workgroup> result: Stats;
var<workgroup> ownerThread: u32;
var<workgroup> ownerTarget: f32;

var<private> rowBase: u32;

// What one pass over the row reduces: a mass, a count, and a min and a max order key.
struct Stats {
  mass: f32,
  count: u32,
  minKey: u32,
  maxKey: u32,
}

fn noStats() -> Stats {
  return Stats(0.0, 0u, 0xffffffffu, 0u);
}

fn scaled(i: u32) -> f32 {
  return logits[rowBase + i] / params.temperature;
}

// exp(z − m) for a token with order key k; −inf gives exactly 0.
fn weight(z: f32, k: u32, m: f32) -> f32 {
  if (k <= KEY_NEG_INF) { return 0.0; }
  return exp(z - m);
}

// Workgroup reduction of every thread's Stats: 256 → 16 partials → 1, in a fixed order.
// The result is workgroup-uniform.
fn reduce(li: u32, v: Stats) -> Stats {
  redF[li] = v.mass;
  redC[li] = v.count;
  redMin[li] = v.minKey;
  redMax[li] = v.maxKey;
  workgroupBarrier();
  if (li < 16u) {
    var a = noStats();
    for (var j = li * 16u; j < li * 16u + 16u; j++) {
      a.mass += redF[j];
      a.count += redC[j];
      a.minKey = min(a.minKey, redMin[j]);
      a.maxKey = max(a.maxKey, redMax[j]);
    }
    redF[li * 16u] = a.mass;
    redC[li * 16u] = a.count;
    redMin[li * 16u] = a.minKey;
    redMax[li * 16u] = a.maxKey;
  }
  workgroupBarrier();
  if (li == 0u) {
    var a = noStats();
    for (var j = 0u; j < WG; j += 16u) {
      a.mass += redF[j];
      a.count += redC[j];
      a.minKey = min(a.minKey, redMin[j]);
      a.maxKey = max(a.maxKey, redMax[j]);
    }
    result = a;
  }
  return workgroupUniformLoad(&result);
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row = wid.x + wid.y * nwg.x;
  if (row >= params.rows) { return; }
  let V = params.V;
  rowBase = row * V; // [rows, V]

  // 1. max and min of z = logits / T (as order keys)
  var st = noStats();
  for (var i = li; i < V; i += WG) {
    let k = orderKey(scaled(i));
    st.minKey = min(st.minKey, k);
    st.maxKey = max(st.maxKey, k);
  }
  let range = reduce(li, st);
  let kMax = range.maxKey;
  if (kMax <= KEY_NEG_INF || kMax >= KEY_POS_INF) {
    if (li == 0u) { out[row] = NO_TOKEN; }
    return;
  }
  let m = keyToF32(kMax);

  // 2. top-k: the largest token key K with count(key ≥ K) ≥ topK, searched in [lo, hi].
  var lo = range.minKey;
  if (params.topK > 0u && params.topK < V) {
    var hi = kMax;
    for (var it = 0u; it < 33u && lo < hi; it++) {
      let mid = lo + (hi - lo + 1u) / 2u; // lo < mid ≤ hi
      var a = noStats();
      for (var i = li; i < V; i += WG) {
        let k = orderKey(scaled(i));
        if (k >= mid) {
          a.count++;
          if (k <= hi) { a.minKey = min(a.minKey, k); }
        } else if (k >= lo) {
          a.maxKey = max(a.maxKey, k);
        }
      }
      let r = reduce(li, a);
      if (r.count >= params.topK) { lo = r.minKey; } else { hi = r.maxKey; }
    }
  }
  let kTh = lo; // smallest key kept by top-k

  // 3. top-p: the smallest token key K ≥ kTh with mass(key > K) < p·Σ (kMax when none: p = 0).
  var thr = kTh;
  if (params.topP < 1.0) {
    var zs = noStats();
    for (var i = li; i < V; i += WG) {
      let z = scaled(i);
      let k = orderKey(z);
      if (k >= kTh) { zs.mass += weight(z, k, m); }
    }
    let massTarget = params.topP * reduce(li, zs).mass;
    var hi = kMax;
    for (var it = 0u; it < 33u && thr < hi; it++) {
      let mid = thr + (hi - thr) / 2u; // thr ≤ mid < hi
      var a = noStats();
      for (var i = li; i < V; i += WG) {
        let z = scaled(i);
        let k = orderKey(z);
        if (k > mid) {
          a.mass += weight(z, k, m);
          if (k <= hi) { a.minKey = min(a.minKey, k); }
        } else if (k >= thr) {
          a.maxKey = max(a.maxKey, k);
        }
      }
      let r = reduce(li, a);
      if (r.mass < massTarget) { hi = r.maxKey; } else { thr = r.minKey; }
    }
  }

  // 4. inverse CDF in index order over contiguous chunks [c0, c1).
  let chunk = (V + WG - 1u) / WG;
  let c0 = min(li * chunk, V);
  let c1 = min(c0 + chunk, V);
  var s = 0.0;
  for (var i = c0; i < c1; i++) {
    let z = scaled(i);
    let k = orderKey(z);
    if (k >= thr) { s += weight(z, k, m); }
  }
  redF[li] = s;
  workgroupBarrier();
  if (li == 0u) {
    var total = 0.0;
    for (var t = 0u; t < WG; t++) { total += redF[t]; }
    let cdfTarget = uniforms[row] * total;
    var run = 0.0;
    var owner = WG;
    var lastNonEmpty = 0u;
    for (var t = 0u; t < WG; t++) {
      let st = redF[t];
      if (st > 0.0) {
        lastNonEmpty = t;
        let next = run + st;
        if (owner == WG && cdfTarget < next) {
          owner = t;
          ownerTarget = cdfTarget - run;
        }
        run = next;
      }
    }
    if (owner == WG) {
      // Rounding put the target at the very end: take the last kept token.
      owner = lastNonEmpty;
      ownerTarget = redF[owner];
    }
    ownerThread = owner;
  }
  workgroupBarrier();
  if (li == ownerThread) {
    let local = ownerTarget;
    var acc = 0.0;
    var pick = NO_TOKEN;
    var last = NO_TOKEN;
    for (var i = c0; i < c1; i++) {
      let z = scaled(i);
      let k = orderKey(z);
      if (k >= thr) {
        let e = weight(z, k, m);
        if (e > 0.0) {
          acc += e;
          last = i;
          if (local < acc) { pick = i; break; }
        }
      }
    }
    out[row] = select(pick, last, pick == NO_TOKEN);
  }
}
