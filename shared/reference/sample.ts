/**
 * Plain TypeScript references of the token selection kernels (no GPU), in f64.
 *
 * `sampleRef` follows the Hugging Face warpers literally, with sorts: temperature, then top-k
 * (`scores < topk(scores, k)[..., -1]` removed), then top-p (ascending sort, softmax, cumsum,
 * remove `cumsum ≤ 1 − p`, keep the largest), then inverse-CDF sampling in index order with the
 * given u. At exact ties on the top-p boundary it keeps every token equal to the smallest kept
 * value, as the GPU kernel does (HF keeps a sort-order-dependent subset there).
 */
import type { SamplingSettings } from '../kernels/sample/top-k-top-p.ts';

/** The id written for a row with no finite logits (mirrors `NO_TOKEN` of the kernel). */
export const NO_TOKEN_REF = 0xffffffff;

/** torch.argmax of one row: ties → lowest index, NaN above every number (first NaN wins). */
export function argmaxRef(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 0; i < row.length; i++) {
    const v = row[i];
    const b = row[best];
    if (Number.isNaN(b)) break;
    if (Number.isNaN(v) || v > b) best = i;
  }
  return best;
}

export interface SampleRefResult {
  /** The sampled token (`NO_TOKEN_REF` when the row has no finite maximum). */
  token: number;
  /** The filtered, renormalised distribution the token is drawn from ([V], zeros where removed). */
  probs: Float64Array;
  /** Mass of the kept tokens before each index ([V]): token i owns u ∈ [cdfBefore[i], cdfBefore[i] + probs[i]). */
  cdfBefore: Float64Array;
  /** Probability (after top-k, before top-p) of the tokens strictly above each token ([V]). */
  massAbove: Float64Array;
  /** Tokens kept after top-k and top-p. */
  keptCount: number;
  /**
   * min |cdf − u| over the steps between kept tokens of the index-order CDF (in probability):
   * below ~1e-5, f32 sums may pick the neighbouring token.
   */
  cdfMargin: number;
  /** min |cumsum_asc − (1 − p)| over the top-p decisions not forced (Infinity when top-p is off). */
  topPMargin: number;
}

/** One row of temperature + top-k + top-p sampling with uniform draw `u` ∈ [0, 1). */
export function sampleRef(logits: ArrayLike<number>, u: number, s: SamplingSettings): SampleRefResult {
  const V = logits.length;
  const z = new Float64Array(V);
  for (let i = 0; i < V; i++) z[i] = logits[i] / s.temperature;
  let m = Number.NEGATIVE_INFINITY;
  let bad = false;
  for (let i = 0; i < V; i++) {
    if (Number.isNaN(z[i])) bad = true;
    else if (z[i] > m) m = z[i];
  }
  const probs = new Float64Array(V);
  if (bad || !Number.isFinite(m)) {
    return { token: NO_TOKEN_REF, probs, cdfBefore: new Float64Array(V), massAbove: new Float64Array(V), keptCount: 0, cdfMargin: 0, topPMargin: Number.POSITIVE_INFINITY };
  }
  const kept = new Uint8Array(V).fill(1);

  // top-k: remove scores < the k-th largest score.
  if (s.topK > 0 && s.topK < V) {
    const sorted = Array.from(z).sort((a, b) => b - a);
    const kth = sorted[s.topK - 1];
    for (let i = 0; i < V; i++) if (z[i] < kth) kept[i] = 0;
  }

  const e = new Float64Array(V);
  let sum = 0;
  for (let i = 0; i < V; i++) {
    e[i] = kept[i] ? Math.exp(z[i] - m) : 0;
    sum += e[i];
  }

  const massAbove = new Float64Array(V);
  {
    const desc = Array.from({ length: V }, (_, i) => i).sort((a, b) => z[b] - z[a]);
    let above = 0;
    for (let j = 0; j < V; ) {
      let k = j;
      let tied = 0;
      for (; k < V && z[desc[k]] === z[desc[j]]; k++) tied += e[desc[k]];
      for (let q = j; q < k; q++) massAbove[desc[q]] = above / sum;
      above += tied;
      j = k;
    }
  }

  // top-p: HF's ascending sort and cumulative softmax.
  let topPMargin = Number.POSITIVE_INFINITY;
  if (s.topP < 1) {
    const asc = Array.from({ length: V }, (_, i) => i).sort((a, b) => (e[a] - e[b]) || (b - a));
    const removeAtOrBelow = 1 - s.topP;
    let cum = 0;
    let smallestKept = Number.POSITIVE_INFINITY;
    for (let j = 0; j < V; j++) {
      const i = asc[j];
      cum += e[i] / sum;
      if (e[i] > 0 && j < V - 1) topPMargin = Math.min(topPMargin, Math.abs(cum - removeAtOrBelow));
      const keep = j === V - 1 || cum > removeAtOrBelow; // the largest token is always kept
      if (keep && kept[i]) smallestKept = Math.min(smallestKept, z[i]);
    }
    for (let i = 0; i < V; i++) if (z[i] < smallestKept) kept[i] = 0;
  }

  let total = 0;
  let keptCount = 0;
  for (let i = 0; i < V; i++) {
    if (!kept[i]) e[i] = 0;
    total += e[i];
    if (kept[i]) keptCount++;
  }
  for (let i = 0; i < V; i++) probs[i] = e[i] / total;

  // Inverse CDF in index order.
  const target = u * total;
  let cum = 0;
  let token = -1;
  let last = -1;
  let cdfMargin = Number.POSITIVE_INFINITY;
  const cdfBefore = new Float64Array(V);
  for (let i = 0; i < V; i++) {
    cdfBefore[i] = cum / total;
    if (e[i] <= 0) continue;
    if (last >= 0) cdfMargin = Math.min(cdfMargin, Math.abs(cum - target) / total); // step between last and i
    cum += e[i];
    last = i;
    if (token < 0 && target < cum) token = i;
  }
  if (token < 0) token = last;
  return { token, probs, cdfBefore, massAbove, keptCount, cdfMargin, topPMargin };
}
