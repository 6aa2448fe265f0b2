// vision/merge-gather — raster patches [t, h, w, D] → merge windows [t·(h/m)·(w/m), m²·D].
//
// Why it exists: the merger (and the DeepStack mergers) read one LLM token as the m×m patches of
// a spatial window concatenated into one m²·D row. The HF pipeline already orders patches by
// window, so its merger only reshapes; this kernel is for activations held in raster order
// (row-major over the patch grid), gathering each window's patches into one contiguous row.
//
//   input, one frame (m = 2)          output row r = (tt·(h/m) + br)·(w/m) + bc
//   ┌────┬────┬────┬────┐             ┌──────────┬──────────┬──────────┬──────────┐
//   │ a  │ b  │ e  │ f  │    ──▶      │ a (0..D) │ b (D..2D)│ c        │ d        │  window (0,0)
//   ├────┼────┼────┼────┤             ├──────────┼──────────┼──────────┼──────────┤
//   │ c  │ d  │ g  │ h  │             │ e        │ f        │ g        │ h        │  window (0,1)
//   └────┴────┴────┴────┘             └──────────┴──────────┴──────────┴──────────┘
//   slot q = (r%m)·m + c%m: top-left, top-right, bottom-left, bottom-right.
//
// One thread per output element. Bindings: x [t·h·w, D] f32 from element xOffset,
// y [t·(h/m)·(w/m), m²·D] f32 from element yOffset.

struct Params {
  t: u32, h: u32, w: u32, D: u32,
  merge: u32, xOffset: u32, yOffset: u32, _pad: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let D = params.D;
  let m = params.merge;
  let gh = params.h / m;
  let gw = params.w / m;
  let rowLen = m * m * D;
  let e = (wid.x + wid.y * nwg.x) * 256u + li; // [t·gh·gw, m²·D]
  if (e >= params.t * gh * gw * rowLen) { return; }
  let row = e / rowLen;
  let j = e % rowLen;
  let q = j / D; // slot inside the window
  let d = j % D;
  let tt = row / (gh * gw);
  let win = row % (gh * gw);
  let r = (win / gw) * m + q / m; // full-resolution patch row
  let c = (win % gw) * m + q % m; // full-resolution patch column
  y[params.yOffset + e] = x[params.xOffset + ((tt * params.h + r) * params.w + c) * D + d]; // x: [t, h, w, D]
}
