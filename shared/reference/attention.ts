/**
 * Reference attention (no GPU): the naive softmax(q·kᵀ·scale + mask)·v of each head, in f64,
 * materialising every score. This is the truth the tiled online-softmax kernels are compared to.
 *
 * Layouts: q [T, Hq, hd], k, v [S, Hkv, hd], out [T, Hq, hd]; query head h reads KV head
 * ⌊h / (Hq / Hkv)⌋ (GQA).
 */
import { gatherPagedRef, type PagedLayout } from './kv.ts';

export interface AttentionShape {
  T: number;
  S: number;
  Hq: number;
  Hkv: number;
  headDim: number;
  /** Default headDim^-0.5. */
  scale?: number;
}

export interface AttentionRefArgs extends AttentionShape {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  /** Whether query t may attend key j. A query that may attend no key gets zeros. */
  allowed: (t: number, j: number) => boolean;
}

/** softmax_j(q[t, h]·k[j, h/G]·scale over allowed j)·v — returns out [T, Hq, hd]. */
export function attentionRef(a: AttentionRefArgs): Float32Array {
  const { T, S, Hq, Hkv, headDim: hd } = a;
  const scale = a.scale ?? 1 / Math.sqrt(hd);
  const G = Hq / Hkv;
  const out = new Float32Array(T * Hq * hd);
  const scores = new Float64Array(S);
  const acc = new Float64Array(hd);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < Hq; h++) {
      const kvh = Math.floor(h / G);
      const qo = (t * Hq + h) * hd;
      let max = Number.NEGATIVE_INFINITY;
      for (let j = 0; j < S; j++) {
        if (!a.allowed(t, j)) {
          scores[j] = Number.NEGATIVE_INFINITY;
          continue;
        }
        const ko = (j * Hkv + kvh) * hd;
        let s = 0;
        for (let d = 0; d < hd; d++) s += a.q[qo + d] * a.k[ko + d];
        scores[j] = s * scale;
        max = Math.max(max, scores[j]);
      }
      if (max === Number.NEGATIVE_INFINITY) continue; // nothing allowed: zeros
      acc.fill(0);
      let sum = 0;
      for (let j = 0; j < S; j++) {
        if (scores[j] === Number.NEGATIVE_INFINITY) continue;
        const p = Math.exp(scores[j] - max);
        sum += p;
        const vo = (j * Hkv + kvh) * hd;
        for (let d = 0; d < hd; d++) acc[d] += p * a.v[vo + d];
      }
      for (let d = 0; d < hd; d++) out[qo + d] = acc[d] / sum;
    }
  }
  return out;
}

/** Causal prefill (attention/flash-prefill): query t sits at position S−T+t and attends keys ≤ it. */
export function causalAttentionRef(a: AttentionShape & { q: Float32Array; k: Float32Array; v: Float32Array }): Float32Array {
  const past = a.S - a.T;
  return attentionRef({ ...a, allowed: (t, j) => j <= past + t });
}

/**
 * Block-diagonal bidirectional attention (attention/vision-varlen): q, k, v [P, H, hd]; patch p
 * attends the keys of its segment [cu[s], cu[s+1]).
 */
export function varlenAttentionRef(a: {
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  P: number;
  H: number;
  headDim: number;
  cuSeqlens: ArrayLike<number>;
  scale?: number;
}): Float32Array {
  const seg = new Int32Array(a.P);
  for (let s = 0; s + 1 < a.cuSeqlens.length; s++) {
    for (let p = a.cuSeqlens[s]; p < a.cuSeqlens[s + 1]; p++) seg[p] = s;
  }
  return attentionRef({
    q: a.q,
    k: a.k,
    v: a.v,
    T: a.P,
    S: a.P,
    Hq: a.H,
    Hkv: a.H,
    headDim: a.headDim,
    scale: a.scale,
    allowed: (t, j) => seg[t] === seg[j],
  });
}

export interface PagedCacheRef {
  kCache: Float32Array;
  vCache: Float32Array;
  blockTables: Uint32Array;
  layout: PagedLayout;
}

/**
 * Decode attention over the paged cache (attention/decode-paged): q [numSeqs, Hq, hd], one query
 * per sequence attending positions 0 .. contextLens[s]−1 of table row s. Length 0 gives zeros.
 */
export function pagedDecodeRef(a: PagedCacheRef & {
  q: Float32Array;
  contextLens: ArrayLike<number>;
  Hq: number;
  scale?: number;
}): Float32Array {
  const { Hkv, headDim } = a.layout;
  const n = a.contextLens.length;
  const rowQ = a.Hq * headDim;
  const out = new Float32Array(n * rowQ);
  for (let s = 0; s < n; s++) {
    const S = a.contextLens[s];
    if (S === 0) continue;
    const k = gatherPagedRef({ cache: a.kCache, blockTables: a.blockTables, seq: s, length: S, layout: a.layout });
    const v = gatherPagedRef({ cache: a.vCache, blockTables: a.blockTables, seq: s, length: S, layout: a.layout });
    const q = a.q.subarray(s * rowQ, (s + 1) * rowQ);
    out.set(causalAttentionRef({ q, k, v, T: 1, S, Hq: a.Hq, Hkv, headDim, scale: a.scale }), s * rowQ);
  }
  return out;
}

/**
 * Chunked prefill over the paged cache (attention/prefill-paged): q [T, Hq, hd] at positions
 * start .. start+T−1 of table row `seq`, causal over positions 0 .. start+T−1.
 */
export function pagedPrefillRef(a: PagedCacheRef & {
  q: Float32Array;
  T: number;
  Hq: number;
  seq: number;
  start: number;
  scale?: number;
}): Float32Array {
  const { Hkv, headDim } = a.layout;
  const S = a.start + a.T;
  const k = gatherPagedRef({ cache: a.kCache, blockTables: a.blockTables, seq: a.seq, length: S, layout: a.layout });
  const v = gatherPagedRef({ cache: a.vCache, blockTables: a.blockTables, seq: a.seq, length: S, layout: a.layout });
  return causalAttentionRef({ q: a.q, k, v, T: a.T, S, Hq: a.Hq, Hkv, headDim, scale: a.scale });
}
