/**
 * Expected Qwen3-VL tensors (names and shapes from config.json) against the golden checkpoints,
 * layer-range selections, tied/untied heads, and validation errors that name file, tensor and
 * both shapes.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { fileDirectory } from '../../edge-node/io/file-source.ts';
import { memorySource } from '../../shared/io/byte-source.ts';
import { CheckpointError } from '../../shared/io/errors.ts';
import { Checkpoint, openCheckpoint } from '../../shared/io/safetensors.ts';
import { openQwen3VLCheckpoint } from '../../shared/model/qwen3-vl/checkpoint.ts';
import { parseQwen3VLConfig, type Qwen3VLConfig } from '../../shared/model/qwen3-vl/config.ts';
import { qwen3VLExpectedTensors, resolveSelection, validateCheckpoint, WeightGroup } from '../../shared/model/qwen3-vl/weights.ts';
import { type RawTensor, readBytes, rewriteHeader, tempDir, tensorBytes, writeSharded, encodeSafetensors } from '../support/safetensors-files.ts';

const golden = fileURLToPath(new URL('../fixtures/golden/', import.meta.url));
const realDir = join(golden, 'realvocab');
const rawConfig = JSON.parse(readFileSync(join(realDir, 'config.json'), 'utf8'));
const config = parseQwen3VLConfig(rawConfig);
const fixtureBytes = readBytes(join(realDir, 'model.safetensors'));
const tmp = tempDir('weights');
afterAll(() => tmp.remove());

/** A checkpoint over in-memory bytes named model.safetensors. */
const inMemory = (bytes: Uint8Array) => Checkpoint.fromSources('ckpt', [memorySource(bytes, 'model.safetensors')]);

// biome-ignore lint/suspicious/noExplicitAny: config JSON is edited freely in these tests
function withConfig(edit: (c: any) => void): Qwen3VLConfig {
  const c = structuredClone(rawConfig);
  edit(c);
  return parseQwen3VLConfig(c);
}

function checkpointError(fn: () => unknown): CheckpointError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CheckpointError);
    return e as CheckpointError;
  }
  throw new Error('expected a CheckpointError');
}

describe('expected tensors', () => {
  it('are exactly the 104 tensors of both golden checkpoints, with their shapes', async () => {
    for (const variant of ['realvocab', 'smallvocab']) {
      const dir = join(golden, variant);
      const cfg = parseQwen3VLConfig(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
      const ckpt = await openCheckpoint(fileDirectory(dir));
      const expected = qwen3VLExpectedTensors(cfg);
      expect(expected).toHaveLength(104);
      expect(new Set(expected.map((e) => e.name))).toEqual(new Set(ckpt.names()));
      for (const e of expected) expect(ckpt.tensor(e.name).shape, e.name).toEqual(e.shape);
      const report = validateCheckpoint(cfg, ckpt);
      expect(report.warnings).toEqual([]);
      expect(report.unexpected).toEqual([]);
      await ckpt.close();
    }
  });

  it('groups: 69 vision, 1 embedding, 33 layer, 1 final norm, no lm_head when tied', () => {
    const count = (g: WeightGroup) => qwen3VLExpectedTensors(config).filter((e) => e.group === g).length;
    expect([WeightGroup.Vision, WeightGroup.Embedding, WeightGroup.Layer, WeightGroup.FinalNorm, WeightGroup.LmHead].map(count)).toEqual([
      69, 1, 33, 1, 0,
    ]);
    const untied = withConfig((c) => {
      c.tie_word_embeddings = false;
      c.text_config.tie_word_embeddings = false;
    });
    const head = qwen3VLExpectedTensors(untied).filter((e) => e.group === WeightGroup.LmHead);
    expect(head).toEqual([{ name: 'lm_head.weight', shape: [151936, 32], group: WeightGroup.LmHead, from: 'text_config.vocab_size, text_config.hidden_size' }]);
  });

  it('follow a mesh stage layer range', () => {
    const names = (sel: Parameters<typeof qwen3VLExpectedTensors>[1]) => qwen3VLExpectedTensors(config, sel).map((e) => e.name);
    // First stage: vision, embedding, layer 0.
    const first = names({ layers: [0, 1] });
    expect(first.filter((n) => n.startsWith('model.visual.'))).toHaveLength(69);
    expect(first).toContain('model.language_model.embed_tokens.weight');
    expect(first.filter((n) => n.includes('.layers.'))).toHaveLength(11);
    expect(first.every((n) => !n.includes('.layers.') || n.includes('.layers.0.'))).toBe(true);
    expect(first).not.toContain('model.language_model.norm.weight');
    // Middle stage: only its layers.
    const middle = names({ layers: [1, 2] });
    expect(middle).toHaveLength(11);
    expect(middle.every((n) => n.startsWith('model.language_model.layers.1.'))).toBe(true);
    // Last stage with a tied head: the embedding serves as lm_head.
    const last = names({ layers: [2, 3] });
    expect(last.filter((n) => !n.includes('.layers.2.'))).toEqual(['model.language_model.embed_tokens.weight', 'model.language_model.norm.weight']);
    const untied = withConfig((c) => (c.tie_word_embeddings = c.text_config.tie_word_embeddings = false));
    expect(qwen3VLExpectedTensors(untied, { layers: [2, 3] }).filter((e) => !e.name.includes('.layers.2.')).map((e) => e.name)).toEqual([
      'model.language_model.norm.weight',
      'lm_head.weight',
    ]);
    // Explicit overrides.
    expect(names({ layers: [1, 2], vision: true }).filter((n) => n.startsWith('model.visual.'))).toHaveLength(69);
    expect(resolveSelection(config, {})).toEqual({ layers: [0, 3], vision: true, embedding: true, head: true });
    expect(checkpointError(() => resolveSelection(config, { layers: [2, 4] })).message).toBe(
      'layer range [2, 4) is not a non-empty range inside the 3 decoder layers of config.json',
    );
    expect(() => resolveSelection(config, { layers: [1, 1] })).toThrow(CheckpointError);
  });
});

describe('validateCheckpoint', () => {
  it('accepts a sharded copy of the checkpoint', async () => {
    const dir = join(tmp.path, 'sharded');
    mkdirSync(dir);
    writeSharded(dir, fixtureBytes, 3);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(rawConfig));
    const opened = await openQwen3VLCheckpoint(fileDirectory(dir), { layers: [1, 3] });
    expect(opened.checkpoint.files()).toHaveLength(3);
    expect(opened.report.tensors.map((t) => t.name)).toContain('model.language_model.layers.2.mlp.down_proj.weight');
    expect(opened.report.warnings).toEqual([]);
    await opened.checkpoint.close();
  });

  it('names the missing tensor and the file it should be in', async () => {
    const bytes = rewriteHeader(fixtureBytes, (h) => delete (h as Record<string, unknown>)['model.language_model.layers.2.self_attn.k_norm.weight']);
    const ckpt = await inMemory(bytes);
    const err = checkpointError(() => validateCheckpoint(config, ckpt));
    expect(err.message).toBe(
      'checkpoint ckpt does not match its config: tensor "model.language_model.layers.2.self_attn.k_norm.weight" is missing from model.safetensors ' +
        '(expected [16] from config.json text_config.head_dim)',
    );
    expect(err.tensor).toBe('model.language_model.layers.2.self_attn.k_norm.weight');
    // A stage without layer 2 does not need it.
    expect(validateCheckpoint(config, ckpt, { layers: [0, 2] }).tensors).toHaveLength(69 + 1 + 22);
  });

  it('names file, tensor, and both shapes when the checkpoint disagrees with the config', async () => {
    // Same bytes, other shape: the header is consistent but the config says [32, 32].
    const bytes = rewriteHeader(fixtureBytes, (h) => void (h['model.language_model.layers.0.self_attn.k_proj.weight'].shape = [16, 64]));
    const ckpt = await inMemory(bytes);
    const err = checkpointError(() => validateCheckpoint(config, ckpt));
    expect(err.message).toBe(
      'checkpoint ckpt does not match its config: model.safetensors: tensor "model.language_model.layers.0.self_attn.k_proj.weight" has shape [16, 64], ' +
        'but config.json implies [32, 32] (text_config.num_key_value_heads × head_dim, text_config.hidden_size)',
    );
    expect(err.file).toBe('model.safetensors');
  });

  it('lists every problem when the config does not fit the checkpoint at all', async () => {
    const ckpt = await inMemory(fixtureBytes);
    const wrong = withConfig((c) => (c.text_config.intermediate_size = 48));
    const err = checkpointError(() => validateCheckpoint(wrong, ckpt));
    expect(err.message).toMatch(/^checkpoint ckpt does not match its config: 9 problems:\n/);
    expect(err.message).toContain(
      'model.safetensors: tensor "model.language_model.layers.0.mlp.gate_proj.weight" has shape [64, 32], but config.json implies [48, 32] (text_config.intermediate_size, text_config.hidden_size)',
    );
    expect(err.message).toContain('tensor "model.language_model.layers.2.mlp.down_proj.weight" has shape [32, 64], but config.json implies [32, 48]');
    const deeper = withConfig((c) => (c.vision_config.depth = 5));
    const e2 = checkpointError(() => validateCheckpoint(deeper, ckpt));
    expect(e2.message).toMatch(/12 problems:\n {2}tensor "model\.visual\.blocks\.4\.norm1\.weight" is missing from model\.safetensors \(expected \[32\]/);
  });

  it('requires lm_head when untied, and names it', async () => {
    const ckpt = await inMemory(fixtureBytes);
    const untied = withConfig((c) => (c.tie_word_embeddings = c.text_config.tie_word_embeddings = false));
    expect(checkpointError(() => validateCheckpoint(untied, ckpt)).message).toBe(
      'checkpoint ckpt does not match its config: tensor "lm_head.weight" is missing from model.safetensors ' +
        '(expected [151936, 32] from config.json text_config.vocab_size, text_config.hidden_size)',
    );
    // A stage that does not hold the head is fine.
    expect(() => validateCheckpoint(untied, ckpt, { layers: [0, 2] })).not.toThrow();
  });

  it('reports unknown tensors and a stored tied lm_head as warnings, not errors', async () => {
    const tensors: Record<string, RawTensor> = Object.fromEntries(tensorBytes(fixtureBytes));
    tensors['lm_head.weight'] = tensors['model.language_model.embed_tokens.weight'];
    tensors['model.visual.extra.weight'] = { dtype: 'F32', shape: [3], data: new Uint8Array(12) };
    const ckpt = await inMemory(encodeSafetensors(tensors));
    const report = validateCheckpoint(config, ckpt);
    expect(report.unexpected).toEqual(['model.visual.extra.weight']);
    expect(report.warnings).toEqual([
      'model.safetensors: "lm_head.weight" is stored but config.json ties it to the embedding (tie_word_embeddings = true): it is ignored, as transformers does',
      '1 tensor(s) not used by a Qwen3-VL of this config are ignored: "model.visual.extra.weight" (model.safetensors)',
    ]);
    // Untied, the stored lm_head is used and expected.
    const untied = withConfig((c) => (c.tie_word_embeddings = c.text_config.tie_word_embeddings = false));
    expect(validateCheckpoint(untied, ckpt).warnings).toHaveLength(1);
  });
});
