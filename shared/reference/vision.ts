/**
 * Plain TypeScript references of the vision-specific kernels (no GPU). They follow Hugging Face
 * `Qwen3VLVisionModel` step by step, in float32 where HF computes in float32 (`Math.fround` after
 * each operation), so a kernel can be compared with them at the f32 tolerance.
 */

/** An image or video in patches: `t` temporal patches of an `h × w` patch grid. */
export interface GridThw {
  t: number;
  h: number;
  w: number;
}

/**
 * `torch.linspace(start, end, steps)` in float32 as torch's CPU kernel evaluates it (scalar
 * path): `step = f32((end - start) / (steps - 1))`, element i is `start + step·i` for
 * i < steps/2 and `end - step·(steps-1-i)` for the rest; `steps == 1` gives `[start]`.
 */
export function linspaceF32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 1) {
    out[0] = start;
    return out;
  }
  const f = Math.fround;
  const s = f(start);
  const e = f(end);
  const step = f(f(e - s) / (steps - 1));
  const half = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) {
    out[i] = i < half ? f(s + f(step * i)) : f(e - f(step * (steps - 1 - i)));
  }
  return out;
}

/**
 * The rows of HF `fast_pos_embed_interpolate` for one grid: `[t·h·w, D]` in merge-window order.
 * `table` is `[G·G, D]` (f16 tables: pass the values already rounded to f16).
 *
 * Computed as HF does: raster `[h·w, D]` from the four corner index/weight lists, repeated for
 * the t temporal patches, then `view(t, h/m, m, w/m, m, D).permute(0, 1, 3, 2, 4, 5)`.
 */
export function posEmbedInterpRef(table: Float32Array, G: number, D: number, grid: GridThw, merge = 2): Float32Array {
  const f = Math.fround;
  const { t, h, w } = grid;
  const ys = linspaceF32(0, G - 1, h);
  const xs = linspaceF32(0, G - 1, w);
  const raster = new Float32Array(h * w * D); // [h, w, D]
  for (let r = 0; r < h; r++) {
    const y0 = Math.trunc(ys[r]);
    const y1 = Math.min(y0 + 1, G - 1);
    const dh = f(ys[r] - y0);
    for (let c = 0; c < w; c++) {
      const x0 = Math.trunc(xs[c]);
      const x1 = Math.min(x0 + 1, G - 1);
      const dw = f(xs[c] - x0);
      const idx = [y0 * G + x0, y0 * G + x1, y1 * G + x0, y1 * G + x1];
      const wt = [f(f(1 - dh) * f(1 - dw)), f(f(1 - dh) * dw), f(dh * f(1 - dw)), f(dh * dw)];
      for (let d = 0; d < D; d++) {
        let s = 0;
        for (let k = 0; k < 4; k++) s = f(s + f(table[idx[k] * D + d] * wt[k]));
        raster[(r * w + c) * D + d] = s;
      }
    }
  }
  // repeat(t, 1) then the 6-D view/permute, written out as index arithmetic on the source.
  const m = merge;
  const out = new Float32Array(t * h * w * D);
  let row = 0;
  for (let tt = 0; tt < t; tt++) {
    for (let br = 0; br < h / m; br++) {
      for (let bc = 0; bc < w / m; bc++) {
        for (let ir = 0; ir < m; ir++) {
          for (let ic = 0; ic < m; ic++) {
            const src = ((br * m + ir) * w + (bc * m + ic)) * D;
            out.set(raster.subarray(src, src + D), row * D);
            row++;
          }
        }
      }
    }
  }
  return out;
}

/** Shape of a video volume and of the Conv3d patch kernel (kernel = stride). */
export interface PatchConvShape {
  /** Frames (a multiple of `kt`). */
  T: number;
  /** Channels (3). */
  C: number;
  /** Pixel height and width (multiples of `ps·merge`). */
  H: number;
  W: number;
  /** Temporal patch size (2) and spatial patch size (16). */
  kt: number;
  ps: number;
  /** Output channels (ViT hidden size). */
  D: number;
}

/**
 * Direct Conv3d with kernel = stride = (kt, ps, ps) over `frames [T, C, H, W]` (a video, frames
 * first as decoded) with weight `[D, C, kt, ps, ps]` and bias `[D]`. Returns `[D, T/kt, H/ps, W/ps]`
 * (PyTorch's NCDHW output for N = 1). Accumulates in f64.
 */
export function conv3dPatchRef(frames: Float32Array, weight: Float32Array, bias: Float32Array, s: PatchConvShape): Float32Array {
  const { T, C, H, W, kt, ps, D } = s;
  const gt = T / kt;
  const gh = H / ps;
  const gw = W / ps;
  const out = new Float32Array(D * gt * gh * gw);
  for (let o = 0; o < D; o++) {
    for (let it = 0; it < gt; it++) {
      for (let iy = 0; iy < gh; iy++) {
        for (let ix = 0; ix < gw; ix++) {
          let acc = bias[o];
          for (let c = 0; c < C; c++) {
            for (let kz = 0; kz < kt; kz++) {
              for (let ky = 0; ky < ps; ky++) {
                for (let kx = 0; kx < ps; kx++) {
                  const wv = weight[(((o * C + c) * kt + kz) * ps + ky) * ps + kx];
                  const fv = frames[((it * kt + kz) * C + c) * H * W + (iy * ps + ky) * W + ix * ps + kx];
                  acc += wv * fv;
                }
              }
            }
          }
          out[((o * gt + it) * gh + iy) * gw + ix] = acc;
        }
      }
    }
  }
  return out;
}

/**
 * The processor's pixel patches of `frames [T, C, H, W]`: `[P, C·kt·ps·ps]`, each patch flattened
 * in (C, t, y, x) order, patches in merge-window order (for each temporal patch, each m×m window
 * row-major, the window's patches row-major).
 */
export function patchifyRef(frames: Float32Array, s: PatchConvShape, merge = 2): Float32Array {
  const { T, C, H, W, kt, ps } = s;
  const gh = H / ps;
  const gw = W / ps;
  const K = C * kt * ps * ps;
  const out = new Float32Array((T / kt) * gh * gw * K);
  let p = 0;
  for (let it = 0; it < T / kt; it++) {
    for (let br = 0; br < gh / merge; br++) {
      for (let bc = 0; bc < gw / merge; bc++) {
        for (let ir = 0; ir < merge; ir++) {
          for (let ic = 0; ic < merge; ic++) {
            const iy = br * merge + ir;
            const ix = bc * merge + ic;
            let k = 0;
            for (let c = 0; c < C; c++) {
              for (let kz = 0; kz < kt; kz++) {
                for (let ky = 0; ky < ps; ky++) {
                  for (let kx = 0; kx < ps; kx++) {
                    out[p * K + k++] = frames[((it * kt + kz) * C + c) * H * W + (iy * ps + ky) * W + ix * ps + kx];
                  }
                }
              }
            }
            p++;
          }
        }
      }
    }
  }
  return out;
}

/**
 * The merge gather: raster `x [t, h, w, D]` → `[t·(h/m)·(w/m), m²·D]`, row r holding window r's
 * patches concatenated (top-left, top-right, bottom-left, bottom-right for m = 2).
 */
export function mergeGatherRef(x: Float32Array, grid: GridThw, D: number, merge = 2): Float32Array {
  const { t, h, w } = grid;
  const m = merge;
  const out = new Float32Array(t * h * w * D);
  let o = 0;
  for (let tt = 0; tt < t; tt++) {
    for (let br = 0; br < h / m; br++) {
      for (let bc = 0; bc < w / m; bc++) {
        for (let ir = 0; ir < m; ir++) {
          for (let ic = 0; ic < m; ic++) {
            const src = ((tt * h + br * m + ir) * w + bc * m + ic) * D;
            for (let d = 0; d < D; d++) out[o++] = x[src + d];
          }
        }
      }
    }
  }
  return out;
}
