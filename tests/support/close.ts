/**
 * `|gpu − ref| ≤ atol + rtol·|ref|` element-wise; the failure message names the worst element.
 */
import { expect } from 'vitest';

export interface Tolerance {
  atol: number;
  rtol: number;
}

/** f32 kernels against the f64/f32 reference (issue contract: 1e-5 abs + 1e-4 rel). */
export const F32_TOL: Tolerance = { atol: 1e-5, rtol: 1e-4 };

export function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: Tolerance, what: string): void {
  expect(got.length, `${what}: length`).toBe(want.length);
  let worst = -1;
  let worstExcess = 0;
  let maxAbs = 0;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (Number.isNaN(got[i]) !== Number.isNaN(want[i])) {
      worst = i;
      worstExcess = Number.POSITIVE_INFINITY;
      break;
    }
    if (Number.isNaN(d)) continue;
    maxAbs = Math.max(maxAbs, d);
    const excess = d - (tol.atol + tol.rtol * Math.abs(want[i]));
    if (excess > worstExcess) {
      worstExcess = excess;
      worst = i;
    }
  }
  if (worst >= 0) {
    expect.fail(
      `${what}: element ${worst} got ${got[worst]}, want ${want[worst]} (|diff| ${Math.abs(got[worst] - want[worst])}, ` +
        `allowed ${tol.atol} + ${tol.rtol}·|ref|; max |diff| ${maxAbs}, n=${want.length})`,
    );
  }
}
