/**
 * The local engine's up-front verdict (buffer limit, device memory, storage room), the GPU
 * footprint it is computed from, and typed errors crossing the worker boundary intact.
 */
import { describe, expect, it } from 'vitest';
import { VlmeshError } from '../../shared/errors.ts';
import type { TensorInfo } from '../../shared/io/safetensors.ts';
import {
  deserializeError,
  ModelFetchError,
  serializeError,
  StorageQuotaError,
  toResult,
  unwrapResult,
} from '../../web/src/local/errors.ts';
import { isLoadedWeight, weightFootprint } from '../../web/src/local/model-loader.ts';
import { modelNameOf, normalizeModelUrl } from '../../web/src/local/model-files.ts';
import { judgeLocalSupport, type SupportFacts } from '../../web/src/local/support.ts';

function tensor(name: string, shape: number[], dtype: TensorInfo['dtype'] = 'BF16'): TensorInfo {
  const elements = shape.reduce((a, b) => a * b, 1);
  return { name, file: 'model.safetensors', dtype, shape, elements, byteOffset: 0, byteLength: elements * (dtype === 'F32' ? 4 : 2) };
}

/** A 2B-like checkpoint: the embedding is the largest tensor (151936 × 2048). */
const tensors = [
  tensor('model.language_model.embed_tokens.weight', [151936, 2048]),
  tensor('model.language_model.layers.0.mlp.up_proj.weight', [6144, 2048]),
  tensor('model.language_model.norm.weight', [2048]),
  tensor('model.visual.blocks.0.attn.qkv.weight', [3072, 1024]),
  tensor('mtp.extra.weight', [1000, 1000]), // not a Qwen3-VL weight: never uploaded
];
const embedF16 = 151936 * 2048 * 2;

const facts = (over: Partial<SupportFacts> = {}): SupportFacts => ({
  adapter: { maxBufferSize: 2 ** 31, f16: true },
  tensors,
  deviceMemoryGiB: 8,
  downloadBytes: 1e9,
  storage: { usageBytes: 0, quotaBytes: 1e11, persisted: false },
  ...over,
});

describe('weight footprint', () => {
  it('counts the tensors loadWeights uploads, in the upload dtype', () => {
    expect(isLoadedWeight('lm_head.weight')).toBe(true);
    expect(isLoadedWeight('mtp.extra.weight')).toBe(false);
    const f16 = weightFootprint(tensors, 'f16');
    expect(f16.largest).toEqual({ name: 'model.language_model.embed_tokens.weight', bytes: embedF16 });
    expect(f16.totalBytes).toBe((151936 * 2048 + 6144 * 2048 + 2048 + 3072 * 1024) * 2);
    expect(weightFootprint(tensors, 'f32').totalBytes).toBe(f16.totalBytes * 2);
    // Buffers are 4-byte aligned: 3 f16 elements take 8 bytes.
    expect(weightFootprint([tensor('model.language_model.norm.weight', [3])], 'f16').totalBytes).toBe(8);
  });
});

describe('judgeLocalSupport', () => {
  it('accepts a model that fits, in f16 with shader-f16 and f32 without', () => {
    expect(judgeLocalSupport(facts())).toMatchObject({ ok: true, dtype: 'f16', downloadBytes: 1e9 });
    expect(judgeLocalSupport(facts({ adapter: { maxBufferSize: 2 ** 31, f16: false } }))).toMatchObject({ ok: true, dtype: 'f32' });
  });

  it('refuses a tensor larger than maxBufferSize, naming it and both sizes', () => {
    const r = judgeLocalSupport(facts({ adapter: { maxBufferSize: 256 * 2 ** 20, f16: true } }));
    expect(r).toMatchObject({ ok: false, code: 'BUFFER_LIMIT' });
    expect(!r.ok && r.reason).toContain('model.language_model.embed_tokens.weight');
    expect(!r.ok && r.reason).toContain('622 MB'); // 151936·2048·2
    expect(!r.ok && r.reason).toContain('268 MB'); // 256 MiB
    // In f32 the same tensor is twice the size.
    expect(judgeLocalSupport(facts({ adapter: { maxBufferSize: embedF16, f16: true } })).ok).toBe(true);
    expect(judgeLocalSupport(facts({ adapter: { maxBufferSize: embedF16, f16: true }, dtype: 'f32' }))).toMatchObject({ ok: false, code: 'BUFFER_LIMIT' });
  });

  it('refuses f16 on an adapter without shader-f16', () => {
    expect(judgeLocalSupport(facts({ adapter: { maxBufferSize: 2 ** 31, f16: false }, dtype: 'f16' }))).toMatchObject({ ok: false, code: 'NO_ADAPTER' });
  });

  it('refuses weights above ¾ of a reported device memory below the cap, never at the cap', () => {
    expect(judgeLocalSupport(facts({ deviceMemoryGiB: 0.5 }))).toMatchObject({ ok: false, code: 'DEVICE_MEMORY' });
    expect(judgeLocalSupport(facts({ deviceMemoryGiB: 4 })).ok).toBe(true);
    const huge = [...tensors, tensor('model.language_model.layers.1.x', [2 ** 33])];
    expect(judgeLocalSupport(facts({ deviceMemoryGiB: 8, adapter: { maxBufferSize: 2 ** 40, f16: true }, tensors: huge })).ok).toBe(true);
  });

  it('refuses a download larger than the room left in the quota, and ignores it when cached', () => {
    const tight = { usageBytes: 2e9, quotaBytes: 2.5e9, persisted: false };
    const r = judgeLocalSupport(facts({ storage: tight }));
    expect(r).toMatchObject({ ok: false, code: 'STORAGE_QUOTA' });
    expect(!r.ok && r.reason).toContain('needs 1.00 GB of browser storage, but this site may store only 500 MB more');
    expect(judgeLocalSupport(facts({ storage: tight, downloadBytes: 0 })).ok).toBe(true);
    expect(judgeLocalSupport(facts({ storage: { usageBytes: null, quotaBytes: null, persisted: null } })).ok).toBe(true);
  });
});

describe('errors across the worker boundary', () => {
  it('rebuilds a StorageQuotaError with its class, fields and message', () => {
    const e = new StorageQuotaError(4e9, { usageBytes: 1e9, quotaBytes: 3e9, persisted: false });
    const back = deserializeError(structuredClone(serializeError(e)));
    expect(back).toBeInstanceOf(StorageQuotaError);
    expect(back).toMatchObject({ code: 'STORAGE_QUOTA', name: 'StorageQuotaError', neededBytes: 4e9, availableBytes: 2e9, persisted: false });
    expect(back.message).toBe(e.message);
  });

  it('rebuilds a ModelFetchError, keeps any other VlmeshError code, and an AbortError', () => {
    const f = deserializeError(serializeError(new ModelFetchError('http://h/m/config.json', 503, 'HTTP 503')));
    expect(f).toBeInstanceOf(ModelFetchError);
    expect(f).toMatchObject({ url: 'http://h/m/config.json', status: 503 });
    const other = deserializeError(serializeError(new VlmeshError('CONTEXT_LENGTH', 'too long')));
    expect(other).toBeInstanceOf(VlmeshError);
    expect(other).toMatchObject({ code: 'CONTEXT_LENGTH', message: 'too long' });
    const abort = deserializeError(serializeError(new DOMException('stop', 'AbortError')));
    expect(abort.name).toBe('AbortError');
    expect(deserializeError(serializeError('plain'))).toMatchObject({ message: 'plain' });
  });

  it('packs outcomes as results and unwraps them into the value or the typed error', async () => {
    expect(unwrapResult(await toResult(() => 42))).toBe(42);
    const r = await toResult(async () => {
      throw new ModelFetchError('u', 404, 'gone');
    });
    expect(r.ok).toBe(false);
    expect(() => unwrapResult(r)).toThrow(ModelFetchError);
  });
});

describe('model URLs', () => {
  it('normalizes a directory URL against the page and names the model after it', () => {
    expect(normalizeModelUrl('/models/tiny', 'http://127.0.0.1:8080/chat?x=1')).toBe('http://127.0.0.1:8080/models/tiny/');
    expect(normalizeModelUrl('http://h/models/Qwen%2FQwen3-VL-2B/?a#b')).toBe('http://h/models/Qwen%2FQwen3-VL-2B/');
    expect(modelNameOf('http://h/models/tiny/')).toBe('tiny');
  });
});
