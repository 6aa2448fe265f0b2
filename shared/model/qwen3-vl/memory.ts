/**
 * GPU memory a Qwen3-VL model takes per weight mode (f32, f16, q4): bytes per parameter, the
 * largest single tensor (what `maxBufferSize` must hold), the total, and KV-cache bytes per token.
 * Pure arithmetic over the tensors the config calls for (`qwen3VLExpectedTensors`) and the rules
 * `loadWeights` follows:
 *
 *   f32  every tensor 4 bytes per element
 *   f16  every tensor 2 bytes per element
 *   q4   decoder projections (q/k/v/o, gate/up/down) as q4: K/2 bytes of codes per row plus one
 *        scale (f16 where the adapter has shader-f16, else f32) per group of 32; everything else
 *        (embeddings — also the tied lm_head —, norms, an untied lm_head, the vision tower) in
 *        the scales' float type
 *
 * Vision `attn.qkv` is split into three tensors on load; the largest-tensor figure counts it as
 * loaded (`[D, D]` each). KV per token: K and V, every layer, `numKvHeads × headDim` elements.
 *
 * @example
 * const r = memoryReport(parseQwen3VLConfig(presetConfigJson('4b')), 'q4');
 * r.fitsMaxBufferSize(4 * 2 ** 30); // true
 */
import { canQuantizeQ4, Q4_DEFAULT_GROUP, q4Bytes, type Q4ScaleDType } from '../../io/quant-q4.ts';
import type { Qwen3VLConfig } from './config.ts';
import { isQ4Target, type ModelDType } from './load.ts';
import { qwen3VLExpectedTensors, WeightGroup } from './weights.ts';

export interface MemoryReportOptions {
  /** q4: scale and float dtype (default f16, as on adapters with shader-f16). */
  floatDtype?: Q4ScaleDType;
  /** q4: group size (default 32). */
  groupSize?: number;
  /** Element type of the KV cache (default f32, what `LocalEngine` allocates today). */
  kvDtype?: 'f32' | 'f16';
}

export interface MemoryReport {
  mode: ModelDType;
  /** Parameters (elements of all weight tensors; a tied lm_head is not counted twice). */
  params: number;
  /** Bytes of all weights on the GPU. */
  weightBytes: number;
  /** weightBytes / params. */
  bytesPerParam: number;
  /** Decoder projection weights only: their bytes per parameter in this mode (4, 2, 0.5625…). */
  projectionBytesPerParam: number;
  /** Parameters held as q4 (0 unless mode is q4). */
  quantizedParams: number;
  /** The largest single weight tensor as loaded (q4: its codes or scales buffer). */
  largestTensor: { name: string; bytes: number };
  /** KV cache bytes per token (all layers, K and V). */
  kvBytesPerToken: number;
  kvDtype: 'f32' | 'f16';
  /** True when every weight buffer fits an adapter with this `maxBufferSize` (bytes). */
  fitsMaxBufferSize(maxBufferSize: number): boolean;
}

/** Bytes and parameter counts of a model's weights in one mode. */
export function memoryReport(config: Qwen3VLConfig, mode: ModelDType, o: MemoryReportOptions = {}): MemoryReport {
  const floatDtype: Q4ScaleDType = mode === 'f32' ? 'f32' : mode === 'f16' ? 'f16' : (o.floatDtype ?? 'f16');
  const fb = floatDtype === 'f16' ? 2 : 4;
  const G = o.groupSize ?? Q4_DEFAULT_GROUP;
  const kvDtype = o.kvDtype ?? 'f32';
  let params = 0;
  let weightBytes = 0;
  let quantizedParams = 0;
  let projParams = 0;
  let projBytes = 0;
  let largest = { name: '', bytes: 0 };
  const consider = (name: string, bytes: number) => {
    if (bytes > largest.bytes) largest = { name, bytes };
  };
  for (const t of qwen3VLExpectedTensors(config)) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    params += n;
    const isProj = t.group === WeightGroup.Layer && isQ4Target(t.name, t.shape, G);
    if (mode === 'q4' && isProj && canQuantizeQ4(t.shape[1], G)) {
      const [N, K] = t.shape;
      const bytes = q4Bytes(N, K, G, floatDtype);
      weightBytes += bytes;
      quantizedParams += n;
      projParams += n;
      projBytes += bytes;
      consider(`${t.name} (codes)`, (N * K) / 2);
      consider(`${t.name} (scales)`, N * (K / G) * fb);
      continue;
    }
    const bytes = n * fb;
    weightBytes += bytes;
    if (isProj) {
      projParams += n;
      projBytes += bytes;
    }
    const qkv = /attn\.qkv\.(weight|bias)$/.test(t.name);
    consider(t.name, qkv ? bytes / 3 : bytes);
  }
  const tc = config.text;
  const kvBytesPerToken = 2 * tc.numLayers * tc.numKvHeads * tc.headDim * (kvDtype === 'f16' ? 2 : 4);
  const largestTensor = largest;
  return {
    mode,
    params,
    weightBytes,
    bytesPerParam: weightBytes / params,
    projectionBytesPerParam: projParams > 0 ? projBytes / projParams : 0,
    quantizedParams,
    largestTensor,
    kvBytesPerToken,
    kvDtype,
    fitsMaxBufferSize: (maxBufferSize: number) => largestTensor.bytes <= maxBufferSize,
  };
}
