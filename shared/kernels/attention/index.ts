/**
 * Attention kernels. All take f32 q/k/v, compute the softmax in f32, and default the scale to
 * head_dim^-0.5.
 *
 *   flash-prefill   causal GQA, contiguous K/V            prompt without a cache, text
 *   vision-varlen   bidirectional, block-diagonal          ViT, one segment per image / frame
 *   decode-paged    one query per sequence, paged K/V     decode batches
 *   prefill-paged   causal chunk over paged K/V           chunked prefill
 */
export { attentionScale, decodeChunk, rowTile } from './common.ts';
export { DECODE_PAGED, type DecodePagedArgs, decodePaged } from './decode-paged.ts';
export { FLASH_PREFILL, type FlashPrefillArgs, flashPrefill } from './flash-prefill.ts';
export { PREFILL_PAGED, type PrefillPagedArgs, prefillPaged } from './prefill-paged.ts';
export { VISION_VARLEN, type VisionVarlenArgs, visionVarlen } from './vision-varlen.ts';
