/**
 * The tensors a Qwen3-VL checkpoint must hold, with shapes derived from `config.json`, and the
 * check of a checkpoint against them. Names are Hugging Face's (transformers 4.57 / 5.x,
 * `Qwen3VLForConditionalGeneration`):
 *
 *   model.visual.patch_embed.proj.{weight [D, C, tp, p, p], bias [D]}
 *   model.visual.pos_embed.weight                         [num_position_embeddings, D]
 *   model.visual.blocks.{i}.norm1/norm2.{weight, bias}    [D]
 *   model.visual.blocks.{i}.attn.qkv.{weight [3D, D], bias [3D]}     (fused q, k, v)
 *   model.visual.blocks.{i}.attn.proj.{weight [D, D], bias [D]}
 *   model.visual.blocks.{i}.mlp.linear_fc1.{weight [Iv, D], bias [Iv]}
 *   model.visual.blocks.{i}.mlp.linear_fc2.{weight [D, Iv], bias [D]}
 *   model.visual.merger.norm.{weight, bias}               [D]      (norm before the 2×2 shuffle)
 *   model.visual.deepstack_merger_list.{k}.norm.{…}       [M]      (norm after it), M = D·merge²
 *   ….linear_fc1.{weight [M, M], bias [M]}, ….linear_fc2.{weight [out, M], bias [out]}
 *   model.language_model.embed_tokens.weight              [V, H]
 *   model.language_model.layers.{i}.input_layernorm / post_attention_layernorm.weight [H]
 *   model.language_model.layers.{i}.self_attn.q_proj [nH·hd, H], k_proj/v_proj [nKV·hd, H],
 *                                  o_proj [H, nH·hd], q_norm/k_norm [hd]            (no biases)
 *   model.language_model.layers.{i}.mlp.gate_proj/up_proj [I, H], down_proj [H, I]
 *   model.language_model.norm.weight [H];  lm_head.weight [V, H] (absent when tied)
 */
import { CheckpointError } from '../../io/errors.ts';
import type { Checkpoint } from '../../io/safetensors.ts';
import type { Qwen3VLConfig } from './config.ts';

/** Which part of the model a tensor belongs to (what a mesh stage may or may not load). */
export enum WeightGroup {
  Vision = 'vision',
  Embedding = 'embedding',
  Layer = 'layer',
  FinalNorm = 'final-norm',
  LmHead = 'lm-head',
}

/** One tensor the config calls for. */
export interface ExpectedTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly group: WeightGroup;
  /** Decoder layer index (group `Layer` only). */
  readonly layer?: number;
  /** The config keys the shape comes from, for error messages. */
  readonly from: string;
}

/** Which tensors a stage needs. Defaults follow the layer range (see `resolveSelection`). */
export interface WeightSelection {
  /** Decoder layers `[start, end)` (default: all). */
  layers?: readonly [number, number];
  /** Vision tower (default: when the range starts at layer 0). */
  vision?: boolean;
  /** Token embedding (default: first stage, or last stage with a tied head, which reads it as lm_head). */
  embedding?: boolean;
  /** Final norm and lm_head (default: when the range ends at the last layer). */
  head?: boolean;
}

/** A selection with every default filled in. */
export interface ResolvedSelection {
  layers: readonly [number, number];
  vision: boolean;
  embedding: boolean;
  head: boolean;
}

/** Fills in a selection's defaults and checks the layer range against the config. */
export function resolveSelection(config: Qwen3VLConfig, sel: WeightSelection = {}): ResolvedSelection {
  const n = config.text.numLayers;
  const layers = sel.layers ?? [0, n];
  const [start, end] = layers;
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > n || start >= end) {
    throw new CheckpointError(`layer range [${start}, ${end}) is not a non-empty range inside the ${n} decoder layers of config.json`);
  }
  const first = start === 0;
  const last = end === n;
  return {
    layers: [start, end],
    vision: sel.vision ?? first,
    embedding: sel.embedding ?? (first || (last && config.text.tieWordEmbeddings)),
    head: sel.head ?? last,
  };
}

/**
 * The tensors (name, shape) a checkpoint of this config holds, restricted to a selection.
 * With a tied head, `lm_head.weight` is not listed: the embedding serves as the head.
 *
 * @example
 * const stage2 = qwen3VLExpectedTensors(config, { layers: [14, 28] });
 */
export function qwen3VLExpectedTensors(config: Qwen3VLConfig, selection: WeightSelection = {}): ExpectedTensor[] {
  const sel = resolveSelection(config, selection);
  const out: ExpectedTensor[] = [];
  const add = (name: string, shape: number[], group: WeightGroup, from: string, layer?: number) =>
    out.push(layer === undefined ? { name, shape, group, from } : { name, shape, group, from, layer });

  if (sel.vision) {
    const v = config.vision;
    const D = v.hiddenSize;
    const Iv = v.intermediateSize;
    const M = D * v.spatialMergeSize * v.spatialMergeSize;
    const out_ = v.outHiddenSize;
    const G = WeightGroup.Vision;
    const p = 'model.visual.';
    const vd = 'vision_config.hidden_size';
    add(`${p}patch_embed.proj.weight`, [D, v.inChannels, v.temporalPatchSize, v.patchSize, v.patchSize], G,
      `${vd}, in_channels, temporal_patch_size, patch_size`);
    add(`${p}patch_embed.proj.bias`, [D], G, vd);
    add(`${p}pos_embed.weight`, [v.numPositionEmbeddings, D], G, `vision_config.num_position_embeddings, ${vd}`);
    for (let i = 0; i < v.depth; i++) {
      const b = `${p}blocks.${i}.`;
      for (const norm of ['norm1', 'norm2']) {
        add(`${b}${norm}.weight`, [D], G, vd);
        add(`${b}${norm}.bias`, [D], G, vd);
      }
      add(`${b}attn.qkv.weight`, [3 * D, D], G, `3 × ${vd}, ${vd}`);
      add(`${b}attn.qkv.bias`, [3 * D], G, `3 × ${vd}`);
      add(`${b}attn.proj.weight`, [D, D], G, `${vd}, ${vd}`);
      add(`${b}attn.proj.bias`, [D], G, vd);
      add(`${b}mlp.linear_fc1.weight`, [Iv, D], G, `vision_config.intermediate_size, ${vd}`);
      add(`${b}mlp.linear_fc1.bias`, [Iv], G, 'vision_config.intermediate_size');
      add(`${b}mlp.linear_fc2.weight`, [D, Iv], G, `${vd}, vision_config.intermediate_size`);
      add(`${b}mlp.linear_fc2.bias`, [D], G, vd);
    }
    // The merger normalises each patch (D) before the 2×2 shuffle; DeepStack mergers normalise
    // the shuffled vector (M = D·merge²): `use_postshuffle_norm`.
    const merged = `${vd} × spatial_merge_size²`;
    const merger = (prefix: string, normWidth: number, normFrom: string) => {
      add(`${prefix}norm.weight`, [normWidth], G, normFrom);
      add(`${prefix}norm.bias`, [normWidth], G, normFrom);
      add(`${prefix}linear_fc1.weight`, [M, M], G, `${merged} (twice)`);
      add(`${prefix}linear_fc1.bias`, [M], G, merged);
      add(`${prefix}linear_fc2.weight`, [out_, M], G, `vision_config.out_hidden_size, ${merged}`);
      add(`${prefix}linear_fc2.bias`, [out_], G, 'vision_config.out_hidden_size');
    };
    merger(`${p}merger.`, D, vd);
    for (let k = 0; k < v.deepstackVisualIndexes.length; k++) merger(`${p}deepstack_merger_list.${k}.`, M, merged);
  }

  const t = config.text;
  const H = t.hiddenSize;
  const th = 'text_config.hidden_size';
  const tv = 'text_config.vocab_size';
  if (sel.embedding) add('model.language_model.embed_tokens.weight', [t.vocabSize, H], WeightGroup.Embedding, `${tv}, ${th}`);
  for (let i = sel.layers[0]; i < sel.layers[1]; i++) {
    const p = `model.language_model.layers.${i}.`;
    const G = WeightGroup.Layer;
    const q = 'text_config.num_attention_heads × head_dim';
    const kv = 'text_config.num_key_value_heads × head_dim';
    const ti = 'text_config.intermediate_size';
    add(`${p}input_layernorm.weight`, [H], G, th, i);
    add(`${p}self_attn.q_proj.weight`, [t.numHeads * t.headDim, H], G, `${q}, ${th}`, i);
    add(`${p}self_attn.k_proj.weight`, [t.numKvHeads * t.headDim, H], G, `${kv}, ${th}`, i);
    add(`${p}self_attn.v_proj.weight`, [t.numKvHeads * t.headDim, H], G, `${kv}, ${th}`, i);
    add(`${p}self_attn.o_proj.weight`, [H, t.numHeads * t.headDim], G, `${th}, ${q}`, i);
    add(`${p}self_attn.q_norm.weight`, [t.headDim], G, 'text_config.head_dim', i);
    add(`${p}self_attn.k_norm.weight`, [t.headDim], G, 'text_config.head_dim', i);
    add(`${p}post_attention_layernorm.weight`, [H], G, th, i);
    add(`${p}mlp.gate_proj.weight`, [t.intermediateSize, H], G, `${ti}, ${th}`, i);
    add(`${p}mlp.up_proj.weight`, [t.intermediateSize, H], G, `${ti}, ${th}`, i);
    add(`${p}mlp.down_proj.weight`, [H, t.intermediateSize], G, `${th}, ${ti}`, i);
  }
  if (sel.head) {
    add('model.language_model.norm.weight', [H], WeightGroup.FinalNorm, th);
    if (!t.tieWordEmbeddings) add('lm_head.weight', [t.vocabSize, H], WeightGroup.LmHead, `${tv}, ${th}`);
  }
  return out;
}

/** What `validateCheckpoint` found besides errors. */
export interface CheckpointReport {
  /** The tensors the selection needs, all present with the right shape. */
  readonly tensors: readonly ExpectedTensor[];
  /** Tensors in the checkpoint that no part of this config uses (any layer range). */
  readonly unexpected: readonly string[];
  /** Human-readable notes (unexpected tensors, an ignored stored lm_head). Not errors. */
  readonly warnings: readonly string[];
}

const shapeText = (s: readonly number[]) => `[${s.join(', ')}]`;

/**
 * Checks that the checkpoint holds every tensor the selection needs, with the shape the config
 * implies. All problems are collected into one `CheckpointError` (each line names the file, the
 * tensor, and the expected and actual shapes). Tensors the config does not know are reported as
 * warnings, not errors.
 *
 * @example
 * const report = validateCheckpoint(config, ckpt, { layers: [0, 14] });
 * for (const w of report.warnings) console.warn(w);
 */
export function validateCheckpoint(config: Qwen3VLConfig, checkpoint: Checkpoint, selection: WeightSelection = {}): CheckpointReport {
  const wanted = qwen3VLExpectedTensors(config, selection);
  const problems: string[] = [];
  let firstProblem: { file?: string; tensor?: string } | undefined;
  for (const e of wanted) {
    if (!checkpoint.has(e.name)) {
      problems.push(`tensor "${e.name}" is missing from ${checkpoint.describe()} (expected ${shapeText(e.shape)} from config.json ${e.from})`);
      firstProblem ??= { tensor: e.name };
      continue;
    }
    const got = checkpoint.tensor(e.name);
    if (got.shape.length !== e.shape.length || got.shape.some((d, i) => d !== e.shape[i])) {
      problems.push(
        `${got.file}: tensor "${e.name}" has shape ${shapeText(got.shape)}, but config.json implies ${shapeText(e.shape)} (${e.from})`,
      );
      firstProblem ??= { file: got.file, tensor: e.name };
    }
  }
  if (problems.length > 0) {
    const head = problems.length === 1 ? problems[0] : `${problems.length} problems:\n  ${problems.join('\n  ')}`;
    throw new CheckpointError(`checkpoint ${checkpoint.name} does not match its config: ${head}`, firstProblem);
  }

  const known = new Set(qwen3VLExpectedTensors(config, { vision: true, embedding: true, head: true }).map((e) => e.name));
  const warnings: string[] = [];
  const unexpected: string[] = [];
  for (const name of checkpoint.names()) {
    if (known.has(name)) continue;
    if (name === 'lm_head.weight' && config.text.tieWordEmbeddings) {
      warnings.push(
        `${checkpoint.tensor(name).file}: "lm_head.weight" is stored but config.json ties it to the embedding ` +
          `(tie_word_embeddings = true): it is ignored, as transformers does`,
      );
      continue;
    }
    unexpected.push(name);
  }
  if (unexpected.length > 0) {
    const list = unexpected.slice(0, 10).map((n) => `"${n}" (${checkpoint.tensor(n).file})`);
    const more = unexpected.length > 10 ? ` and ${unexpected.length - 10} more` : '';
    warnings.push(`${unexpected.length} tensor(s) not used by a Qwen3-VL of this config are ignored: ${list.join(', ')}${more}`);
  }
  return { tensors: wanted, unexpected, warnings };
}
