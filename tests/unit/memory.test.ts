/** `memoryReport`: bytes per parameter, largest tensor, KV bytes per token per mode. */
import { describe, expect, it } from 'vitest';
import { parseQwen3VLConfig } from '../../shared/model/qwen3-vl/config.ts';
import { memoryReport } from '../../shared/model/qwen3-vl/memory.ts';
import { presetConfigJson } from '../../shared/model/qwen3-vl/presets.ts';

const GiB = 2 ** 30;
const cfg = (size: '2b' | '4b' | '8b') => parseQwen3VLConfig(presetConfigJson(size));

describe('memoryReport', () => {
  it('f32 is 4 bytes and f16 2 bytes per parameter; q4 projections 0.5625 (f16 scales) or 0.625 (f32)', () => {
    const c = cfg('2b');
    const f32 = memoryReport(c, 'f32');
    const f16 = memoryReport(c, 'f16');
    expect(f32.bytesPerParam).toBe(4);
    expect(f16.bytesPerParam).toBe(2);
    expect(f16.params).toBe(f32.params);
    expect(memoryReport(c, 'q4').projectionBytesPerParam).toBe(0.5625);
    expect(memoryReport(c, 'q4', { floatDtype: 'f32' }).projectionBytesPerParam).toBe(0.625);
    expect(f32.quantizedParams).toBe(0);
  });

  it('counts the 2B decoder projections exactly', () => {
    const c = cfg('2b');
    const t = c.text;
    const perLayer = t.hiddenSize * (t.numHeads * t.headDim) * 2 + t.hiddenSize * (t.numKvHeads * t.headDim) * 2 + 3 * t.hiddenSize * t.intermediateSize;
    const q4 = memoryReport(c, 'q4');
    expect(q4.quantizedParams).toBe(perLayer * t.numLayers);
    const f16 = memoryReport(c, 'f16');
    expect(f16.weightBytes - q4.weightBytes).toBe(q4.quantizedParams * (2 - 0.5625));
  });

  it('KV bytes per token: K and V, every layer, kv heads × head dim', () => {
    const c = cfg('4b');
    expect(memoryReport(c, 'q4').kvBytesPerToken).toBe(2 * 36 * 8 * 128 * 4);
    expect(memoryReport(c, 'q4', { kvDtype: 'f16' }).kvBytesPerToken).toBe(2 * 36 * 8 * 128 * 2);
  });

  it('the 4B model in q4 fits an adapter whose maxBufferSize is 4 GiB, buffer by buffer and in total', () => {
    const r = memoryReport(cfg('4b'), 'q4');
    expect(r.fitsMaxBufferSize(4 * GiB)).toBe(true);
    expect(r.weightBytes).toBeLessThan(4 * GiB);
    // The largest buffer is the embedding (also the tied lm_head), kept in f16.
    expect(r.largestTensor.name).toBe('model.language_model.embed_tokens.weight');
    expect(r.largestTensor.bytes).toBe(151936 * 2560 * 2);
    // f32 does not fit 4 GiB in total.
    expect(memoryReport(cfg('4b'), 'f32').weightBytes).toBeGreaterThan(4 * GiB);
    for (const size of ['2b', '4b', '8b'] as const) {
      for (const mode of ['f32', 'f16', 'q4'] as const) {
        const m = memoryReport(cfg(size), mode);
        console.log(
          `[memory] ${size} ${mode}: ${(m.params / 1e9).toFixed(3)} B params, ${(m.weightBytes / GiB).toFixed(2)} GiB, ` +
            `${m.bytesPerParam.toFixed(3)} B/param (projections ${m.projectionBytesPerParam.toFixed(4)}), ` +
            `largest ${m.largestTensor.name} ${(m.largestTensor.bytes / 2 ** 20).toFixed(0)} MiB, KV ${m.kvBytesPerToken} B/token (${m.kvDtype})`,
        );
      }
    }
  });
});
