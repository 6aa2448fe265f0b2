/** Qwen3-VL: config, generation config, checkpoint layout and validation, checkpoint opening. */
export { checkpointUploader, openQwen3VLCheckpoint, type Qwen3VLCheckpoint } from './checkpoint.ts';
export {
  ConfigError,
  parseQwen3VLConfig,
  type Qwen3VLConfig,
  type Qwen3VLTextConfig,
  type Qwen3VLVisionConfig,
} from './config.ts';
export { GENERATION_DEFAULTS, type GenerationConfig, parseGenerationConfig } from './generation-config.ts';
export {
  type CheckpointReport,
  type ExpectedTensor,
  qwen3VLExpectedTensors,
  type ResolvedSelection,
  resolveSelection,
  validateCheckpoint,
  WeightGroup,
  type WeightSelection,
} from './weights.ts';
