/**
 * 3-axis position ids, exactly as `Qwen3VLModel.get_rope_index` computes them.
 *
 * Walk the sequence with a running start `p`:
 *
 *   ids:   text text <vs> [pad pad pad pad pad pad] <ve> text …
 *   t:     0    1    2     3   3   3   3   3   3     6    7
 *   h:     0    1    2     3   3   3   4   4   4     6    7      (grid gh=2, gw=3 → 6 pads)
 *   w:     0    1    2     3   4   5   3   4   5     6    7
 *                          └ p=3 ┘ next p = 3 + max(gh, gw) = 6
 *
 * A text run of length L takes p..p+L-1 on all three axes. A vision span (one image, or one
 * temporal patch of a video, each a maximal run of pad tokens) with merged grid (t, gh, gw) gets
 * t = p + ti, h = p + row, w = p + col, and the next start is max(span) + 1. Videos are split per
 * temporal patch: `video_grid_thw` rows are repeated t times with t = 1. `ropeDelta` =
 * max(pos) + 1 − S: a decoded token at absolute index i ≥ S has position i + ropeDelta on every
 * axis.
 */
import { ShapeError } from '../../errors.ts';

/** Token type per position, as the official processor's `mm_token_type_ids`. */
export enum MmTokenType {
  Text = 0,
  Image = 1,
  Video = 2,
}

export interface RopeIndexArgs {
  inputIds: ArrayLike<number>;
  /** Grids in patches, [t, h, w] per image, in sequence order. */
  imageGridThw?: readonly (readonly [number, number, number])[];
  /** Grids in patches, [t, h, w] per video, in sequence order. */
  videoGridThw?: readonly (readonly [number, number, number])[];
  imageTokenId: number;
  videoTokenId: number;
  spatialMergeSize: number;
}

export interface RopeIndex {
  /** [3, S] as three rows t, h, w. */
  positions: [Int32Array, Int32Array, Int32Array];
  ropeDelta: number;
}

/** Token types from the ids (image / video pad ids), like the processor's mm_token_type_ids. */
export function mmTokenTypes(inputIds: ArrayLike<number>, imageTokenId: number, videoTokenId: number): Uint8Array {
  const out = new Uint8Array(inputIds.length);
  for (let i = 0; i < inputIds.length; i++) {
    out[i] = inputIds[i] === imageTokenId ? MmTokenType.Image : inputIds[i] === videoTokenId ? MmTokenType.Video : MmTokenType.Text;
  }
  return out;
}

/**
 * Computes position ids and the rope delta for one sequence.
 *
 * @example
 * const { positions, ropeDelta } = getRopeIndex({ inputIds, imageGridThw: [[1, 4, 6]],
 *   imageTokenId: 151655, videoTokenId: 151656, spatialMergeSize: 2 });
 */
export function getRopeIndex(a: RopeIndexArgs): RopeIndex {
  const S = a.inputIds.length;
  const m = a.spatialMergeSize;
  const types = mmTokenTypes(a.inputIds, a.imageTokenId, a.videoTokenId);
  const images = [...(a.imageGridThw ?? [])];
  // One span per temporal patch of each video.
  const frames: [number, number, number][] = [];
  for (const [t, h, w] of a.videoGridThw ?? []) for (let i = 0; i < t; i++) frames.push([1, h, w]);
  const pos: [Int32Array, Int32Array, Int32Array] = [new Int32Array(S), new Int32Array(S), new Int32Array(S)];
  let p = 0;
  let i = 0;
  let imageIdx = 0;
  let frameIdx = 0;
  while (i < S) {
    const type = types[i];
    if (type === MmTokenType.Text) {
      pos[0][i] = pos[1][i] = pos[2][i] = p;
      p++;
      i++;
      continue;
    }
    const kind = type === MmTokenType.Image ? 'image' : 'video';
    const grid = type === MmTokenType.Image ? images[imageIdx++] : frames[frameIdx++];
    if (!grid) {
      throw new ShapeError(`rope index: the prompt has more ${kind} spans than ${kind} grids were given`);
    }
    const [t, h, w] = grid;
    const gh = h / m;
    const gw = w / m;
    if (!Number.isInteger(gh) || !Number.isInteger(gw)) {
      throw new ShapeError(`rope index: ${kind} grid [${grid}] is not divisible by spatial_merge_size ${m}`);
    }
    const n = t * gh * gw;
    for (let k = 0; k < n; k++) {
      if (i + k >= S || types[i + k] !== type) {
        throw new ShapeError(`rope index: ${kind} span at token ${i} has fewer than the ${n} pad tokens its grid [${grid}] needs`);
      }
    }
    let max = p;
    for (let k = 0; k < n; k++) {
      const ti = Math.floor(k / (gh * gw));
      const row = Math.floor((k % (gh * gw)) / gw);
      const col = k % gw;
      pos[0][i + k] = p + ti;
      pos[1][i + k] = p + row;
      pos[2][i + k] = p + col;
      max = Math.max(max, p + ti, p + row, p + col);
    }
    i += n;
    p = max + 1;
  }
  if (imageIdx !== images.length) throw new ShapeError(`rope index: ${images.length} image grids but ${imageIdx} image spans in the prompt`);
  if (frameIdx !== frames.length) throw new ShapeError(`rope index: ${frames.length} video frame groups but ${frameIdx} video spans in the prompt`);
  return { positions: pos, ropeDelta: p - S };
}
