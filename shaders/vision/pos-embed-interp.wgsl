// vision/pos-embed-interp — hidden[rows of one image] += bilinear(pos_table) in merge-window order.
//
// Why it exists: the ViT's learned absolute position table is a G×G grid (G = 48 in the
// published models) that must be resized to every image's patch grid (h, w). Interpolating on
// the GPU avoids a host round trip of P×D floats per image and fuses the add into the
// patch-embedding output. It follows Hugging Face `fast_pos_embed_interpolate`:
//
//   ys = linspace(0, G-1, h), xs = linspace(0, G-1, w)          (corner-aligned, float32)
//   y0 = floor(ys), y1 = min(y0 + 1, G-1), dh = ys - y0         (same for x with dw)
//   pos(r, c) = ((T[y0,x0]·(1-dh)(1-dw) + T[y0,x1]·(1-dh)dw) + T[y1,x0]·dh(1-dw)) + T[y1,x1]·dh·dw
//
// torch's float32 linspace evaluates `step·i` for i < n/2 and `end - step·(n-1-i)` for the rest;
// the factory passes `step = f32((G-1)/(n-1))` and the kernel mirrors the two halves.
//
// The same (r, c) value is added to every temporal patch, at the row the merge-window patch
// order gives it (HF: view(t, h/m, m, w/m, m, D).permute(0, 1, 3, 2, 4, 5)). For m = 2:
//
//   raster grid (r, c)              rows of `hidden` for temporal patch tt
//   ┌────┬────┬────┬────┐           base = rowOffset + tt·h·w
//   │ 0,0│ 0,1│ 0,2│ 0,3│           window (br, bc) = (r/m, c/m) starts at base + (br·(w/m) + bc)·m²
//   ├────┼────┼────┼────┤           inside it: + (r%m)·m + c%m
//   │ 1,0│ 1,1│ 1,2│ 1,3│   ──▶     row order: (0,0) (0,1) (1,0) (1,1) | (0,2) (0,3) (1,2) (1,3) | …
//   └────┴────┴────┴────┘
//
// One thread per (r, c, d) element of the interpolated grid; it adds its value to all t copies.
// Header from the factory: `alias TT` (table element type, f32 or f16).
// Bindings: table [G·G, D] TT, hidden [P, D] f32 (read_write; rows rowOffset … rowOffset+t·h·w-1).

struct Params {
  t: u32, h: u32, w: u32, D: u32,
  G: u32, merge: u32, rowOffset: u32, _pad0: u32,
  stepH: f32, stepW: f32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<storage, read> table: array<TT>;
@group(0) @binding(1) var<storage, read_write> hidden: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

// torch.linspace(0, end, n)[i] in float32 (CPU kernel): two halves, each exact at its own end.
fn linspaceAt(i: u32, n: u32, step: f32, end: f32) -> f32 {
  if (n == 1u) { return 0.0; }
  if (i < n / 2u) { return step * f32(i); }
  return end - step * f32(n - 1u - i);
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let D = params.D;
  let h = params.h;
  let w = params.w;
  let e = (wid.x + wid.y * nwg.x) * 256u + li; // [h, w, D] raster element
  if (e >= h * w * D) { return; }
  let d = e % D;
  let rc = e / D;
  let r = rc / w;
  let c = rc % w;

  let G = params.G;
  let end = f32(G - 1u);
  let ys = linspaceAt(r, h, params.stepH, end);
  let xs = linspaceAt(c, w, params.stepW, end);
  let y0 = u32(ys); // ys ≥ 0: truncation is floor
  let x0 = u32(xs);
  let y1 = min(y0 + 1u, G - 1u);
  let x1 = min(x0 + 1u, G - 1u);
  let dh = ys - f32(y0);
  let dw = xs - f32(x0);
  let w00 = (1.0 - dh) * (1.0 - dw);
  let w01 = (1.0 - dh) * dw;
  let w10 = dh * (1.0 - dw);
  let w11 = dh * dw;
  // table rows: [G·G, D], row = y·G + x
  let v00 = f32(table[(y0 * G + x0) * D + d]) * w00;
  let v01 = f32(table[(y0 * G + x1) * D + d]) * w01;
  let v10 = f32(table[(y1 * G + x0) * D + d]) * w10;
  let v11 = f32(table[(y1 * G + x1) * D + d]) * w11;
  let pos = ((v00 + v01) + v10) + v11;

  let m = params.merge;
  let inFrame = ((r / m) * (w / m) + c / m) * m * m + (r % m) * m + c % m;
  for (var tt = 0u; tt < params.t; tt++) {
    let row = params.rowOffset + tt * h * w + inFrame; // [P, D]
    hidden[row * D + d] += pos;
  }
}
