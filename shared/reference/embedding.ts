/**
 * Plain TypeScript reference of the embedding gather: out[t, :] = table[ids[t], :].
 * Ids outside [0, V) give a row of zeros (what the kernel writes for them).
 */
export function gatherRef(table: Float32Array, V: number, D: number, ids: ArrayLike<number>): Float32Array {
  if (table.length !== V * D) throw new Error(`gatherRef: table has ${table.length} values, want ${V}×${D}`);
  const out = new Float32Array(ids.length * D);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t];
    if (id >= 0 && id < V) out.set(table.subarray(id * D, (id + 1) * D), t * D);
  }
  return out;
}
