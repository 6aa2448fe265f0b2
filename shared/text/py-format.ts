/**
 * Python's fixed-point float formatting ("{:.Nf}"), which the Qwen3-VL processor uses for the video
 * timestamps `<{t:.1f} seconds>`.
 *
 * Python rounds the exact binary value of the double, ties to even; JavaScript's toFixed rounds
 * ties away from zero:
 *
 *   x      exact binary value          Python "{:.1f}"   JS toFixed(1)
 *   0.25   0.25 (a tie)                "0.2"             "0.3"
 *   1.25   1.25 (a tie)                "1.2"             "1.3"
 *   0.35   0.34999999999999997779…     "0.3"             "0.3"
 *   0.45   0.45000000000000001110…     "0.5"             "0.5"
 *
 * Done exactly with BigInt: x = m·2^e, so x·10^d = m·10^d / 2^(−e) is a ratio of integers.
 */

/** Mantissa and exponent with |x| = mant · 2^exp, mant a non-negative integer. */
function decompose(x: number): { mant: bigint; exp: number } {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const hi = view.getUint32(0);
  const lo = view.getUint32(4);
  const biased = (hi >>> 20) & 0x7ff;
  let mant = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
  if (biased === 0) return { mant, exp: -1074 }; // subnormal or zero
  mant |= 1n << 52n;
  return { mant, exp: biased - 1075 };
}

/**
 * Formats `x` like Python's `format(x, f".{digits}f")`: exact value, round half to even,
 * "-0.0" for negative zero and for negatives that round to zero, "nan" / "inf" / "-inf".
 *
 * @example
 * formatPyFixed(0.25, 1) // "0.2"
 * formatPyFixed(2.675, 2) // "2.67" (2.675 is 2.67499999… in binary)
 */
export function formatPyFixed(x: number, digits: number): string {
  if (!Number.isInteger(digits) || digits < 0 || digits > 100) throw new RangeError(`digits ${digits} out of range`);
  if (Number.isNaN(x)) return 'nan';
  if (x === Number.POSITIVE_INFINITY) return 'inf';
  if (x === Number.NEGATIVE_INFINITY) return '-inf';
  const negative = x < 0 || Object.is(x, -0);
  const { mant, exp } = decompose(Math.abs(x));
  const scale = 10n ** BigInt(digits);
  let q: bigint;
  if (exp >= 0) {
    q = (mant << BigInt(exp)) * scale;
  } else {
    const num = mant * scale;
    const den = 1n << BigInt(-exp);
    q = num / den;
    const twice = 2n * (num - q * den);
    if (twice > den || (twice === den && (q & 1n) === 1n)) q += 1n;
  }
  let s = q.toString();
  if (digits > 0) {
    s = s.padStart(digits + 1, '0');
    s = `${s.slice(0, -digits)}.${s.slice(-digits)}`;
  }
  return (negative ? '-' : '') + s;
}

/** Python's `"{:.1f}".format(x)`, the format of Qwen3-VL's video timestamps. */
export function formatPyFixed1(x: number): string {
  return formatPyFixed(x, 1);
}
