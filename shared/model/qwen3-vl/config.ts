/**
 * Qwen3-VL `config.json`, normalised. Reads both the transformers 4.57 form
 * (`text_config.rope_scaling` + `text_config.rope_theta`) and the 5.x form
 * (`text_config.rope_parameters`). Errors name the file and the key.
 */
import { VlmeshError } from '../../errors.ts';

export class ConfigError extends VlmeshError {
  constructor(message: string) {
    super('BAD_CONFIG', message);
  }
}

export interface Qwen3VLTextConfig {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  mropeSection: [number, number, number];
  mropeInterleaved: boolean;
  tieWordEmbeddings: boolean;
  maxPositionEmbeddings: number;
}

export interface Qwen3VLVisionConfig {
  depth: number;
  hiddenSize: number;
  intermediateSize: number;
  numHeads: number;
  patchSize: number;
  temporalPatchSize: number;
  spatialMergeSize: number;
  inChannels: number;
  numPositionEmbeddings: number;
  outHiddenSize: number;
  deepstackVisualIndexes: number[];
  hiddenAct: string;
}

export interface Qwen3VLConfig {
  text: Qwen3VLTextConfig;
  vision: Qwen3VLVisionConfig;
  imageTokenId: number;
  videoTokenId: number;
  visionStartTokenId: number;
  visionEndTokenId: number;
}

type Json = Record<string, unknown>;

/**
 * Parses a `config.json` object.
 *
 * @example
 * const config = parseQwen3VLConfig(JSON.parse(text), 'config.json');
 */
export function parseQwen3VLConfig(raw: unknown, file = 'config.json'): Qwen3VLConfig {
  if (!raw || typeof raw !== 'object') throw new ConfigError(`${file}: not a JSON object`);
  const root = raw as Json;
  const obj = (o: Json, key: string, where: string): Json => {
    const v = o[key];
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new ConfigError(`${file}: "${where}${key}" must be an object`);
    return v as Json;
  };
  const num = (o: Json, key: string, where: string, fallback?: number): number => {
    const v = o[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(`${file}: "${where}${key}" must be a number, got ${JSON.stringify(v)}`);
    return v;
  };
  const int = (o: Json, key: string, where: string, fallback?: number): number => {
    const v = num(o, key, where, fallback);
    if (!Number.isInteger(v) || v < 0) throw new ConfigError(`${file}: "${where}${key}" must be a non-negative integer, got ${v}`);
    return v;
  };
  const tc = obj(root, 'text_config', '');
  const vc = obj(root, 'vision_config', '');
  const T = 'text_config.';
  const V = 'vision_config.';
  // Rope: 4.57 keeps rope_theta beside rope_scaling; 5.x folds both into rope_parameters.
  const ropeParams = (tc.rope_parameters ?? tc.rope_scaling) as Json | undefined;
  if (!ropeParams || typeof ropeParams !== 'object') {
    throw new ConfigError(`${file}: "${T}rope_scaling" (4.57) or "${T}rope_parameters" (5.x) is required for MRoPE`);
  }
  const ropeWhere = tc.rope_parameters ? `${T}rope_parameters.` : `${T}rope_scaling.`;
  const section = ropeParams.mrope_section;
  if (!Array.isArray(section) || section.length !== 3 || !section.every((s) => Number.isInteger(s))) {
    throw new ConfigError(`${file}: "${ropeWhere}mrope_section" must be three integers, got ${JSON.stringify(section)}`);
  }
  const ropeTheta = num(tc.rope_parameters ? ropeParams : tc, 'rope_theta', tc.rope_parameters ? ropeWhere : T, ropeParams.rope_theta as number | undefined);
  const hidden = int(tc, 'hidden_size', T);
  const heads = int(tc, 'num_attention_heads', T);
  const text: Qwen3VLTextConfig = {
    hiddenSize: hidden,
    numLayers: int(tc, 'num_hidden_layers', T),
    numHeads: heads,
    numKvHeads: int(tc, 'num_key_value_heads', T, heads),
    headDim: int(tc, 'head_dim', T, hidden / heads),
    intermediateSize: int(tc, 'intermediate_size', T),
    vocabSize: int(tc, 'vocab_size', T),
    rmsNormEps: num(tc, 'rms_norm_eps', T, 1e-6),
    ropeTheta,
    mropeSection: section as [number, number, number],
    mropeInterleaved: Boolean(ropeParams.mrope_interleaved ?? true),
    tieWordEmbeddings: Boolean(root.tie_word_embeddings ?? tc.tie_word_embeddings ?? false),
    maxPositionEmbeddings: int(tc, 'max_position_embeddings', T, 262144),
  };
  if (text.numHeads % text.numKvHeads !== 0) {
    throw new ConfigError(`${file}: "${T}num_attention_heads" (${text.numHeads}) must be a multiple of num_key_value_heads (${text.numKvHeads})`);
  }
  if (section[0] + section[1] + section[2] !== text.headDim / 2) {
    throw new ConfigError(`${file}: "${ropeWhere}mrope_section" [${section}] must sum to head_dim/2 = ${text.headDim / 2}`);
  }
  const ds = vc.deepstack_visual_indexes ?? [];
  if (!Array.isArray(ds) || !ds.every((d) => Number.isInteger(d))) {
    throw new ConfigError(`${file}: "${V}deepstack_visual_indexes" must be a list of integers`);
  }
  const vision: Qwen3VLVisionConfig = {
    depth: int(vc, 'depth', V),
    hiddenSize: int(vc, 'hidden_size', V),
    intermediateSize: int(vc, 'intermediate_size', V),
    numHeads: int(vc, 'num_heads', V),
    patchSize: int(vc, 'patch_size', V, 16),
    temporalPatchSize: int(vc, 'temporal_patch_size', V, 2),
    spatialMergeSize: int(vc, 'spatial_merge_size', V, 2),
    inChannels: int(vc, 'in_channels', V, 3),
    numPositionEmbeddings: int(vc, 'num_position_embeddings', V),
    outHiddenSize: int(vc, 'out_hidden_size', V),
    deepstackVisualIndexes: ds as number[],
    hiddenAct: String(vc.hidden_act ?? 'gelu_pytorch_tanh'),
  };
  if (vision.outHiddenSize !== text.hiddenSize) {
    throw new ConfigError(`${file}: "${V}out_hidden_size" (${vision.outHiddenSize}) must equal "${T}hidden_size" (${text.hiddenSize})`);
  }
  return {
    text,
    vision,
    imageTokenId: int(root, 'image_token_id', ''),
    videoTokenId: int(root, 'video_token_id', ''),
    visionStartTokenId: int(root, 'vision_start_token_id', ''),
    visionEndTokenId: int(root, 'vision_end_token_id', ''),
  };
}

/** The vision token ids under their config.json names (what the text processor reads). */
export function visionTokenIds(cfg: Qwen3VLConfig) {
  return {
    image_token_id: cfg.imageTokenId,
    video_token_id: cfg.videoTokenId,
    vision_start_token_id: cfg.visionStartTokenId,
    vision_end_token_id: cfg.visionEndTokenId,
  };
}
