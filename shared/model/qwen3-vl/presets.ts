/**
 * `config.json` of the published Qwen3-VL Instruct checkpoints (4.57 form), and the tiny test
 * configuration of the golden data, for `vlmesh synth`. Shapes from the published configs (see
 * tests/fixtures/golden/ARCHITECTURE.md, "Published configs").
 */
export type PresetSize = 'tiny' | '2b' | '4b' | '8b';

interface Dims {
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  tie: boolean;
  vDepth: number;
  vHidden: number;
  vIntermediate: number;
  vHeads: number;
  deepstack: number[];
  vocab: number;
  numPos: number;
  mrope: [number, number, number];
}

const DIMS: Record<PresetSize, Dims> = {
  tiny: { hidden: 32, layers: 3, heads: 4, kvHeads: 2, headDim: 16, intermediate: 64, tie: true, vDepth: 4, vHidden: 32, vIntermediate: 64, vHeads: 2, deepstack: [1, 2], vocab: 151936, numPos: 64, mrope: [4, 2, 2] },
  '2b': { hidden: 2048, layers: 28, heads: 16, kvHeads: 8, headDim: 128, intermediate: 6144, tie: true, vDepth: 24, vHidden: 1024, vIntermediate: 4096, vHeads: 16, deepstack: [5, 11, 17], vocab: 151936, numPos: 2304, mrope: [24, 20, 20] },
  '4b': { hidden: 2560, layers: 36, heads: 32, kvHeads: 8, headDim: 128, intermediate: 9728, tie: true, vDepth: 24, vHidden: 1024, vIntermediate: 4096, vHeads: 16, deepstack: [5, 11, 17], vocab: 151936, numPos: 2304, mrope: [24, 20, 20] },
  '8b': { hidden: 4096, layers: 36, heads: 32, kvHeads: 8, headDim: 128, intermediate: 12288, tie: false, vDepth: 27, vHidden: 1152, vIntermediate: 4304, vHeads: 16, deepstack: [8, 16, 24], vocab: 151936, numPos: 2304, mrope: [24, 20, 20] },
};

export const PRESET_SIZES = Object.keys(DIMS) as PresetSize[];

/** The config.json object of a preset. */
export function presetConfigJson(size: PresetSize): Record<string, unknown> {
  const d = DIMS[size];
  return {
    architectures: ['Qwen3VLForConditionalGeneration'],
    model_type: 'qwen3_vl',
    image_token_id: 151655,
    video_token_id: 151656,
    vision_start_token_id: 151652,
    vision_end_token_id: 151653,
    tie_word_embeddings: d.tie,
    transformers_version: '4.57.0.dev0',
    text_config: {
      model_type: 'qwen3_vl_text',
      attention_bias: false,
      bos_token_id: 151643,
      eos_token_id: 151645,
      dtype: 'bfloat16',
      head_dim: d.headDim,
      hidden_act: 'silu',
      hidden_size: d.hidden,
      intermediate_size: d.intermediate,
      max_position_embeddings: 262144,
      num_attention_heads: d.heads,
      num_hidden_layers: d.layers,
      num_key_value_heads: d.kvHeads,
      rms_norm_eps: 1e-6,
      rope_scaling: { mrope_interleaved: true, mrope_section: d.mrope, rope_type: 'default' },
      rope_theta: 5000000,
      tie_word_embeddings: d.tie,
      vocab_size: d.vocab,
    },
    vision_config: {
      model_type: 'qwen3_vl_vision',
      deepstack_visual_indexes: d.deepstack,
      depth: d.vDepth,
      hidden_act: 'gelu_pytorch_tanh',
      hidden_size: d.vHidden,
      in_channels: 3,
      intermediate_size: d.vIntermediate,
      num_heads: d.vHeads,
      num_position_embeddings: d.numPos,
      out_hidden_size: d.hidden,
      patch_size: 16,
      spatial_merge_size: 2,
      temporal_patch_size: 2,
    },
  };
}
