// sample/order-key — include (no entry point): f32 → u32 keys whose unsigned order is the
// numeric order of the floats, used by the sampling kernels to compare, reduce and binary-search
// logits with integer operations only (exact, and immune to fast-math NaN/denormal handling).
//
//   -inf … -0 | +0 … +inf | NaN          (−0 is folded onto +0, so they tie like torch's compare;
//   0x007fffff   0x80000000   0xffffffff   every NaN maps above +inf, like torch.argmax/max)

const KEY_NAN: u32 = 0xffffffffu;

fn orderKey(x: f32) -> u32 {
  var b = bitcast<u32>(x);
  let mag = b & 0x7fffffffu;
  if (mag > 0x7f800000u) { return KEY_NAN; }
  if (mag == 0u) { b = 0u; }
  if ((b & 0x80000000u) != 0u) { return ~b; }
  return b | 0x80000000u;
}

fn keyToF32(k: u32) -> f32 {
  if ((k & 0x80000000u) != 0u) { return bitcast<f32>(k & 0x7fffffffu); }
  return bitcast<f32>(~k);
}

const KEY_NEG_INF: u32 = 0x007fffffu; // orderKey(-inf)
const KEY_POS_INF: u32 = 0xff800000u; // orderKey(+inf)
