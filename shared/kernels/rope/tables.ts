/**
 * Per-pair frequency and position-axis tables of the three rotary schemes (see
 * `shaders/rope/rotary.wgsl`). Inverse frequencies are computed the way torch does in float32:
 * `1 / base ** (arange(0, dim, 2).float() / dim)`.
 */

/** Which positions drive which rotary pair. */
export enum RopeMode {
  /** 1-D RoPE: one position per token. */
  Neox = 'neox',
  /** Qwen3-VL text: positions (t, h, w), pairs interleaved T,H,W,T,H,W… over mrope_section. */
  InterleavedMrope = 'interleaved-mrope',
  /** Qwen3-VL vision tower: (row, col) per patch; first quarter of head_dim rows, second cols. */
  Vision2d = 'vision-2d',
}

export interface RopeTables {
  /** Inverse frequency of each pair j < head_dim/2. */
  freqs: Float32Array;
  /** Position axis (row of the positions tensor) of each pair. */
  axisOf: Uint32Array;
  /** Rows of the positions tensor. */
  axes: number;
}

const f = Math.fround;

/** torch float32 `1 / base ** (arange(0, dim, 2) / dim)`: dim/2 values. */
export function invFreqF32(base: number, dim: number): Float32Array {
  const out = new Float32Array(dim / 2);
  for (let j = 0; j < dim / 2; j++) out[j] = f(1 / f(base ** f((2 * j) / dim)));
  return out;
}

/**
 * Tables for a mode.
 *
 * - Neox: pair j uses inv_freq(theta, headDim)[j] and axis 0.
 * - InterleavedMrope: as Neox, but pair j uses axis 1 (h) when j % 3 == 1 and j < 3·section[1],
 *   axis 2 (w) when j % 3 == 2 and j < 3·section[2] (HF `apply_interleaved_mrope`).
 * - Vision2d: inv_freq(theta, headDim/2) has headDim/4 values; pair j < headDim/4 uses the row
 *   (axis 0) with inv_freq[j], the rest the column (axis 1) with inv_freq[j − headDim/4].
 */
export function ropeTables(mode: RopeMode, o: { headDim: number; theta: number; mropeSection?: readonly number[] }): RopeTables {
  const half = o.headDim / 2;
  if (!Number.isInteger(half) || half < 1) throw new RangeError(`head_dim must be even, got ${o.headDim}`);
  const axisOf = new Uint32Array(half);
  switch (mode) {
    case RopeMode.Neox:
      return { freqs: invFreqF32(o.theta, o.headDim), axisOf, axes: 1 };
    case RopeMode.InterleavedMrope: {
      const s = o.mropeSection;
      if (s?.length !== 3) throw new RangeError('interleaved MRoPE needs mrope_section [t, h, w]');
      if (s[0] + s[1] + s[2] !== half) throw new RangeError(`mrope_section [${s}] must sum to head_dim/2 = ${half}`);
      for (let j = 0; j < half; j++) {
        if (j % 3 === 1 && j < 3 * s[1]) axisOf[j] = 1;
        else if (j % 3 === 2 && j < 3 * s[2]) axisOf[j] = 2;
      }
      return { freqs: invFreqF32(o.theta, o.headDim), axisOf, axes: 3 };
    }
    case RopeMode.Vision2d: {
      if (o.headDim % 4 !== 0) throw new RangeError(`vision 2-D RoPE needs head_dim % 4 == 0, got ${o.headDim}`);
      const inv = invFreqF32(o.theta, half);
      const q = o.headDim / 4;
      const freqs = new Float32Array(half);
      for (let j = 0; j < half; j++) {
        freqs[j] = inv[j % q];
        axisOf[j] = j < q ? 0 : 1;
      }
      return { freqs, axisOf, axes: 2 };
    }
  }
}

/**
 * (row, col) of each patch in the vision tower's order (HF `rot_pos_emb`): for each temporal
 * patch, for each merge window (row-major), the window's patches (row-major). Returns [2, P].
 */
export function visionPatchPositions(grids: readonly (readonly [number, number, number])[], merge: number): Uint32Array {
  const P = grids.reduce((s, [t, h, w]) => s + t * h * w, 0);
  const out = new Uint32Array(2 * P);
  let p = 0;
  for (const [t, h, w] of grids) {
    for (let ti = 0; ti < t; ti++) {
      for (let br = 0; br < h / merge; br++) {
        for (let bc = 0; bc < w / merge; bc++) {
          for (let ir = 0; ir < merge; ir++) {
            for (let ic = 0; ic < merge; ic++) {
              out[p] = br * merge + ir;
              out[P + p] = bc * merge + ic;
              p++;
            }
          }
        }
      }
    }
  }
  return out;
}
