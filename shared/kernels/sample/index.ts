/**
 * Token selection on the GPU: greedy `argmax` and temperature/top-k/top-p sampling. Both read
 * `[rows, V]` logits where they are and write one u32 id per row, so a decode step reads back
 * 4 bytes per sequence instead of the logits. The sampler's randomness comes from `SampleRng`.
 */
export { ARGMAX, type ArgmaxArgs, argmax } from './argmax.ts';
export { InvalidSeedError, SampleRng } from './rng.ts';
export {
  checkSampled,
  NO_TOKEN,
  SamplingError,
  type SamplingSettings,
  TOP_K_TOP_P,
  type TopKTopPArgs,
  topKTopP,
  validateSampling,
} from './top-k-top-p.ts';
export { NO_PENALTIES, PENALTIES, type PenaltiesArgs, type PenaltySettings, penalties, penaltiesOff, validatePenalties } from './penalties.ts';
