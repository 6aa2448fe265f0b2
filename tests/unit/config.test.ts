/**
 * config.json (transformers 4.57 and 5.x forms) and generation_config.json: the golden files,
 * a 5.x conversion written to a temp dir, and errors that name the file and the key.
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { fileDirectory } from '../../edge-node/io/file-source.ts';
import { memoryDirectory, memorySource } from '../../shared/io/byte-source.ts';
import { openQwen3VLCheckpoint } from '../../shared/model/qwen3-vl/checkpoint.ts';
import { ConfigError, parseQwen3VLConfig, type Qwen3VLConfig } from '../../shared/model/qwen3-vl/config.ts';
import { GENERATION_DEFAULTS, parseGenerationConfig } from '../../shared/model/qwen3-vl/generation-config.ts';
import { tempDir } from '../support/safetensors-files.ts';

const golden = fileURLToPath(new URL('../fixtures/golden/', import.meta.url));
// biome-ignore lint/suspicious/noExplicitAny: config JSON is edited freely in these tests
type Json = Record<string, any>;
const readJson = (path: string): Json => JSON.parse(readFileSync(path, 'utf8'));
const realRaw = readJson(join(golden, 'realvocab/config.json'));
const smallRaw = readJson(join(golden, 'smallvocab/config.json'));
const tmp = tempDir('config');
afterAll(() => tmp.remove());

/** The tiny golden architecture (tests/fixtures/golden/README.md, "Tiny config"). */
const tinyText = {
  hiddenSize: 32,
  numLayers: 3,
  numHeads: 4,
  numKvHeads: 2,
  headDim: 16,
  intermediateSize: 64,
  rmsNormEps: 1e-6,
  ropeTheta: 5e6,
  mropeSection: [4, 2, 2],
  mropeInterleaved: true,
  tieWordEmbeddings: true,
  maxPositionEmbeddings: 262144,
};
const tinyVision = {
  depth: 4,
  hiddenSize: 32,
  intermediateSize: 64,
  numHeads: 2,
  patchSize: 16,
  temporalPatchSize: 2,
  spatialMergeSize: 2,
  inChannels: 3,
  numPositionEmbeddings: 64,
  outHiddenSize: 32,
  deepstackVisualIndexes: [1, 2],
  hiddenAct: 'gelu_pytorch_tanh',
};

/**
 * The config as transformers 5.x saves it: `rope_scaling` + `rope_theta` folded into
 * `text_config.rope_parameters` (rope_type, rope_theta, mrope_section, mrope_interleaved).
 */
function to5x(raw: Json, tieAt: 'top' | 'text' | 'both' = 'both'): Json {
  const c = structuredClone(raw);
  const tc = c.text_config;
  const { rope_scaling: rs, rope_theta: theta } = tc;
  delete tc.rope_scaling;
  delete tc.rope_theta;
  tc.rope_parameters = { rope_type: rs.rope_type, rope_theta: theta, mrope_section: rs.mrope_section, mrope_interleaved: rs.mrope_interleaved };
  c.transformers_version = '5.12.1';
  if (tieAt === 'top') delete tc.tie_word_embeddings;
  if (tieAt === 'text') delete c.tie_word_embeddings;
  return c;
}

/** The ConfigError `fn` throws. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('config.json', () => {
  it('normalises the realvocab config (4.57 form)', () => {
    const c = parseQwen3VLConfig(realRaw);
    expect(c.text).toEqual({ ...tinyText, vocabSize: 151936 });
    expect(c.vision).toEqual(tinyVision);
    expect([c.imageTokenId, c.videoTokenId, c.visionStartTokenId, c.visionEndTokenId]).toEqual([151655, 151656, 151652, 151653]);
  });

  it('normalises the smallvocab config (remapped ids, vocab 2048)', () => {
    const c = parseQwen3VLConfig(smallRaw);
    expect(c.text).toEqual({ ...tinyText, vocabSize: 2048 });
    expect([c.imageTokenId, c.videoTokenId, c.visionStartTokenId, c.visionEndTokenId]).toEqual([1912, 1913, 1909, 1910]);
  });

  it('reads the 5.x form (rope_parameters) to the same config, wherever tie_word_embeddings sits', async () => {
    const want = parseQwen3VLConfig(realRaw);
    for (const tieAt of ['top', 'text', 'both'] as const) {
      expect(parseQwen3VLConfig(to5x(realRaw, tieAt)), tieAt).toEqual(want);
      expect(parseQwen3VLConfig(to5x(smallRaw, tieAt)), tieAt).toEqual(parseQwen3VLConfig(smallRaw));
    }
    // Written to disk beside the weights and opened as a checkpoint directory.
    const dir = join(tmp.path, 'v5');
    mkdirSync(dir);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(to5x(realRaw), null, 2));
    copyFileSync(join(golden, 'realvocab/model.safetensors'), join(dir, 'model.safetensors'));
    const opened = await openQwen3VLCheckpoint(fileDirectory(dir));
    try {
      expect(opened.config).toEqual(want);
      expect(opened.generation).toBeNull();
      expect(opened.checkpoint.size).toBe(104);
    } finally {
      await opened.checkpoint.close();
    }
  });

  it('reads the published 2B shape (untied 8B-style head when tie is false)', () => {
    const c = structuredClone(realRaw);
    Object.assign(c.text_config, { hidden_size: 2048, num_hidden_layers: 28, num_attention_heads: 16, num_key_value_heads: 8, head_dim: 128, intermediate_size: 6144 });
    c.text_config.rope_scaling.mrope_section = [24, 20, 20];
    Object.assign(c.vision_config, { depth: 24, hidden_size: 1024, intermediate_size: 4096, num_heads: 16, num_position_embeddings: 2304, out_hidden_size: 2048, deepstack_visual_indexes: [5, 11, 17] });
    c.tie_word_embeddings = false;
    c.text_config.tie_word_embeddings = false;
    const parsed: Qwen3VLConfig = parseQwen3VLConfig(c);
    expect(parsed.text).toMatchObject({ hiddenSize: 2048, numLayers: 28, headDim: 128, mropeSection: [24, 20, 20], tieWordEmbeddings: false });
    expect(parsed.vision).toMatchObject({ depth: 24, numPositionEmbeddings: 2304, deepstackVisualIndexes: [5, 11, 17] });
  });

  it('names config.json and the key when a field is missing or invalid', () => {
    const edit = (f: (c: Json) => void) => {
      const c = structuredClone(realRaw);
      f(c);
      return c;
    };
    let e = configError(() => parseQwen3VLConfig(edit((c) => delete c.text_config.hidden_size)));
    expect(e.message).toMatch(/^config\.json: "text_config\.hidden_size" must be a number/);
    expect(e.code).toBe('BAD_CONFIG');
    e = configError(() => parseQwen3VLConfig(edit((c) => (c.vision_config.depth = 'four'))));
    expect(e.message).toMatch(/^config\.json: "vision_config\.depth" must be a number, got "four"/);
    e = configError(() => parseQwen3VLConfig(edit((c) => (c.text_config.num_hidden_layers = 2.5))));
    expect(e.message).toMatch(/^config\.json: "text_config\.num_hidden_layers" must be a non-negative integer/);
    e = configError(() => parseQwen3VLConfig(edit((c) => delete c.text_config.rope_scaling)));
    expect(e.message).toMatch(/config\.json: "text_config\.rope_scaling" \(4\.57\) or "text_config\.rope_parameters" \(5\.x\) is required/);
    e = configError(() => parseQwen3VLConfig(edit((c) => (c.text_config.rope_scaling.mrope_section = [4, 2]))));
    expect(e.message).toMatch(/^config\.json: "text_config\.rope_scaling\.mrope_section" must be three integers/);
    e = configError(() => parseQwen3VLConfig(edit((c) => (c.text_config.rope_scaling.mrope_section = [4, 2, 4]))));
    expect(e.message).toMatch(/"text_config\.rope_scaling\.mrope_section" \[4,2,4\] must sum to head_dim\/2 = 8/);
    e = configError(() => parseQwen3VLConfig(to5x(edit((c) => (c.text_config.rope_scaling.mrope_section = null)))));
    expect(e.message).toMatch(/^config\.json: "text_config\.rope_parameters\.mrope_section" must be three integers/);
    e = configError(() => parseQwen3VLConfig(edit((c) => delete c.vision_config)));
    expect(e.message).toBe('config.json: "vision_config" must be an object');
    e = configError(() => parseQwen3VLConfig(edit((c) => delete c.image_token_id)));
    expect(e.message).toMatch(/^config\.json: "image_token_id" must be a number/);
  });

  it('says when config.json is missing or not JSON', async () => {
    const weights = memorySource(new Uint8Array(8), 'model.safetensors');
    await expect(openQwen3VLCheckpoint(memoryDirectory('ckpt', [weights]))).rejects.toThrow('ckpt: config.json is missing');
    const bad = memorySource(new TextEncoder().encode('{"text_config": '), 'config.json');
    await expect(openQwen3VLCheckpoint(memoryDirectory('ckpt', [bad, weights]))).rejects.toThrow(/^ckpt\/config\.json is not valid JSON/);
  });
});

describe('generation_config.json', () => {
  it('reads the realvocab file (eos as a list)', async () => {
    const g = parseGenerationConfig(readJson(join(golden, 'realvocab/generation_config.json')));
    expect(g).toEqual({
      eosTokenIds: [151645, 151643],
      padTokenId: 151643,
      bosTokenId: 151643,
      doSample: true,
      temperature: 0.7,
      topK: 20,
      topP: 0.8,
      repetitionPenalty: 1,
      maxNewTokens: null,
    });
    const opened = await openQwen3VLCheckpoint(fileDirectory(join(golden, 'realvocab')));
    expect(opened.generation).toEqual(g);
    await opened.checkpoint.close();
  });

  it('takes eos as an int, and transformers defaults for absent keys', () => {
    expect(parseGenerationConfig({ eos_token_id: 7, max_new_tokens: 64 })).toEqual({ ...GENERATION_DEFAULTS, eosTokenIds: [7], maxNewTokens: 64 });
    expect(parseGenerationConfig({})).toEqual(GENERATION_DEFAULTS);
    expect(parseGenerationConfig({ eos_token_id: [2, 2, 3], pad_token_id: null }).eosTokenIds).toEqual([2, 3]);
  });

  it('names generation_config.json and the key on bad values', () => {
    const msg = (raw: unknown) => configError(() => parseGenerationConfig(raw)).message;
    expect(msg({ eos_token_id: 'x' })).toBe('generation_config.json: "eos_token_id" must be a token id or a list of token ids, got "x"');
    expect(msg({ eos_token_id: [1, -2] })).toBe('generation_config.json: "eos_token_id" must be a token id or a list of token ids, got [1,-2]');
    expect(msg({ pad_token_id: 1.5 })).toBe('generation_config.json: "pad_token_id" must be a token id (a non-negative integer), got 1.5');
    expect(msg({ top_p: 0 })).toBe('generation_config.json: "top_p" must be a number in (0, 1], got 0');
    expect(msg({ top_k: -1 })).toBe('generation_config.json: "top_k" must be a non-negative integer, got -1');
    expect(msg({ temperature: '0.7' })).toBe('generation_config.json: "temperature" must be a number ≥ 0, got "0.7"');
    expect(msg({ do_sample: 'yes' })).toBe('generation_config.json: "do_sample" must be true or false, got "yes"');
    expect(msg([1])).toBe('generation_config.json: not a JSON object');
  });
});
