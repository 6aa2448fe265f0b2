/**
 * Vision-encoder kernels that are specific to the ViT (the rest reuses linear, norm, attention…).
 *
 * Patch embedding needs no kernel of its own: Conv3d with kernel = stride = (2, 16, 16) on a
 * `[3, 2, 16, 16]` patch is `linear` with the conv weight viewed as `[D, 1536]` (flatten order
 * C, t, y, x, the order the processor flattens pixel patches in).
 */
export { MERGE_GATHER, type MergeGatherArgs, mergeGather } from './merge-gather.ts';
export {
  linspaceStepF32,
  POS_EMBED_INTERP,
  type PatchGrid,
  type PosEmbedInterpArgs,
  posEmbedInterp,
  posEmbedInterpCalls,
} from './pos-embed-interp.ts';
