/**
 * Plain TypeScript reference of the sampling penalties (no GPU), written the way vLLM's
 * `apply_penalties` is: dense masks over the vocabulary, built from the raw token lists, and no
 * use of the kernel's CSR layout (so a test checks the layout builder and the kernel together).
 * Arithmetic is rounded to f32 after each step, as torch does on f32 logits.
 */
import type { PenaltySettings } from '../kernels/sample/penalties.ts';

/**
 * One row: returns a copy of `logits` ([V]) with
 *   z[t] = z[t] > 0 ? z[t] / r : z[t] · r          for t in prompt ∪ output,
 *   z[t] −= f · outputCount[t];  z[t] −= p · (outputCount[t] > 0).
 * Ids ≥ V are ignored.
 */
export function penaltiesRef(
  logits: ArrayLike<number>,
  promptIds: ArrayLike<number>,
  outputIds: ArrayLike<number>,
  s: PenaltySettings,
): Float32Array {
  const V = logits.length;
  const z = Float32Array.from(logits);
  const seen = new Uint8Array(V);
  const outCount = new Uint32Array(V);
  for (let i = 0; i < promptIds.length; i++) if (promptIds[i] < V) seen[promptIds[i]] = 1;
  for (let i = 0; i < outputIds.length; i++) {
    const t = outputIds[i];
    if (t < V) {
      seen[t] = 1;
      outCount[t]++;
    }
  }
  const f32 = Math.fround;
  // The kernel gets the settings as f32 uniforms.
  const r = f32(s.repetition);
  const f = f32(s.frequency);
  const p = f32(s.presence);
  for (let t = 0; t < V; t++) {
    if (seen[t]) z[t] = z[t] > 0 ? f32(z[t] / r) : f32(z[t] * r);
    if (outCount[t] > 0) {
      z[t] = f32(z[t] - f32(f * outCount[t]));
      z[t] = f32(z[t] - p);
    }
  }
  return z;
}
