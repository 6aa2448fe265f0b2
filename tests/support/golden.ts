/** Reads golden case files (tests/fixtures/golden): tensors are {dtype, shape, data}. */
export interface GoldenTensor {
  dtype: 'float32' | 'int64';
  shape: number[];
  data: number[];
}

export type GoldenCase = Record<string, unknown>;

export function tensor(c: GoldenCase, key: string): GoldenTensor {
  const t = c[key] as GoldenTensor | undefined;
  if (!t || !Array.isArray(t.shape)) throw new Error(`golden case has no tensor "${key}"`);
  return t;
}

/** Rows of a 2-D int tensor as tuples. */
export function rows3(t: GoldenTensor | undefined): [number, number, number][] {
  if (!t) return [];
  const out: [number, number, number][] = [];
  for (let i = 0; i < t.shape[0]; i++) out.push([t.data[3 * i], t.data[3 * i + 1], t.data[3 * i + 2]]);
  return out;
}
