/**
 * Python / NumPy rounding rules, for bit-equal sizes, frame indices and timestamp strings.
 *
 * JavaScript's `Math.round` rounds halves up and `toFixed` rounds halves away from zero; Python's
 * `round(x)`, NumPy's `.round()` and `"{:.1f}".format(x)` round exact halves to even. Only exact
 * halves differ (the decision is made on the exact binary value in both languages).
 */

/** Python `round(x)` / NumPy `np.round(x)` for a finite double: nearest integer, exact halves to even. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f; // exact: x and f are within one binade step
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Python `f"{x:.{digits}f}"` for a finite double: the exact binary value rounded to `digits`
 * decimals, exact ties to even (`0.25 → "0.2"`, `0.35 → "0.3"` because 0.35 is really 0.34999…).
 */
export function formatFixed(x: number, digits: number): string {
  const js = x.toFixed(digits); // exact decimal rounding, ties away from zero
  // A tie needs x · 10^d = k + ½ exactly, i.e. x = odd / 2^(d+1) (5^d must divide the odd
  // numerator for x to be a double): t = x · 2^(d+1) is then exact and an odd integer.
  const t = x * 2 ** (digits + 1);
  if (!Number.isInteger(t) || Math.abs(t) >= 2 ** 53 || t % 2 === 0) return js;
  // JavaScript picked the neighbour away from zero; Python wants the even one.
  const neg = js.startsWith('-');
  const body = neg ? js.slice(1) : js;
  const lastDigit = Number(body[body.length - 1]);
  if (lastDigit % 2 === 0) return js;
  const scaled = BigInt(body.replace('.', '')) - 1n; // one step toward zero in the last place
  let s = scaled.toString().padStart(digits + 1, '0');
  if (digits > 0) s = s.slice(0, s.length - digits) + '.' + s.slice(s.length - digits);
  return neg ? '-' + s : s; // Python keeps the sign of a negative value that rounds to zero, as toFixed does
}
