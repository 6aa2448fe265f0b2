/**
 * Streaming q4 upload (`uploadTensorQ4`, what `checkpointUploader` does for `dtype: 'q4'`) gives the
 * same codes and scales as quantizing the whole tensor on the host, for chunks of a few rows, and
 * `loadWeights` with `dtype: 'q4'` quantizes exactly the decoder projections.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { fileDirectory } from '../../edge-node/io/file-source.ts';
import { openCheckpoint } from '../../shared/io/safetensors.ts';
import { quantizeQ4 } from '../../shared/io/quant-q4.ts';
import { readTensorF32 } from '../../shared/io/upload.ts';
import { uploadTensorQ4 } from '../../shared/io/upload-q4.ts';
import { checkpointUploader, openQwen3VLCheckpoint } from '../../shared/model/qwen3-vl/checkpoint.ts';
import { isQ4Target, loadWeights } from '../../shared/model/qwen3-vl/load.ts';
import { testContext } from '../support/gpu.ts';

const realvocab = fileURLToPath(new URL('../fixtures/golden/realvocab/', import.meta.url));
const ctx = await testContext();

describe.skipIf(!ctx)('q4 upload from a checkpoint', () => {
  it('streams rows in chunks with the same bits as whole-tensor quantization', async () => {
    const c = ctx!;
    const ckpt = await openCheckpoint(fileDirectory(realvocab));
    try {
      const name = 'model.language_model.layers.1.mlp.down_proj.weight'; // [32, 64]
      const [N, K] = ckpt.tensor(name).shape;
      for (const scaleDtype of c.caps.f16 ? (['f32', 'f16'] as const) : (['f32'] as const)) {
        const want = quantizeQ4(await readTensorF32(ckpt, name), N, K, { scaleDtype });
        // 3 rows' worth of bytes per read: rounded down to 2 rows per chunk.
        const got = await uploadTensorQ4(c, ckpt, name, { scaleDtype, chunkBytes: 3 * K * 2 });
        expect(Array.from(await c.read(got.codes))).toEqual(Array.from(want.codes));
        expect(Array.from(await c.readF32(got.scales))).toEqual(Array.from(want.scales));
        expect(got.scaleDtype).toBe(scaleDtype);
        got.release();
      }
    } finally {
      await ckpt.close();
    }
  });

  it('loadWeights q4 quantizes the seven decoder projections and nothing else', async () => {
    const c = ctx!;
    const { config, checkpoint: ckpt } = await openQwen3VLCheckpoint(fileDirectory(realvocab));
    try {
      const w = await loadWeights(c, config, checkpointUploader(ckpt), { dtype: 'q4', floatDtype: 'f32' });
      let quantized = 0;
      for (const name of ckpt.names()) {
        if (!w.has(name)) continue;
        expect(w.isQuantized(name), name).toBe(isQ4Target(name, ckpt.tensor(name).shape));
        if (w.isQuantized(name)) quantized++;
      }
      expect(quantized).toBe(7 * config.text.numLayers);
      expect(() => w.get('model.language_model.layers.0.self_attn.q_proj.weight')).toThrow(/q4/);
      w.release();
    } finally {
      await ckpt.close();
    }
  });
});
