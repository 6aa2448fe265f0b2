/**
 * Attention kernels. All take f32 q/k/v, compute the softmax in f32, and default the scale to
 * head_dim^-0.5.
 *
 *   flash-prefill   causal GQA, contiguous K/V            prompt without a cache, text
 *   vision-varlen   bidirectional, block-diagonal          ViT, one segment per image / frame
 *   decode-paged    one query per sequence, paged K/V     decode batches
 *   decode-subgroup the same, one subgroup per head       decode batches on CPU adapters (lavapipe)
 *   prefill-paged   causal chunk over paged K/V           chunked prefill
 */
import type { GpuContext } from '../../gpu/context.ts';
import type { ProgramCall } from '../../gpu/program.ts';
import { type DecodePagedArgs, decodePaged } from './decode-paged.ts';
import { decodeSubgroup, decodeSubgroupSupported } from './decode-subgroup.ts';

export { attentionScale, decodeChunk, rowTile } from './common.ts';
export { DECODE_PAGED, type DecodePagedArgs, decodePaged } from './decode-paged.ts';
export { DECODE_SUBGROUP, decodeSubgroup, decodeSubgroupSupported } from './decode-subgroup.ts';
export { FLASH_PREFILL, type FlashPrefillArgs, flashPrefill } from './flash-prefill.ts';
export { PREFILL_PAGED, type PrefillPagedArgs, prefillPaged } from './prefill-paged.ts';
export { VISION_VARLEN, type VisionVarlenArgs, visionVarlen } from './vision-varlen.ts';

/**
 * Decode attention with the variant this adapter prefers (`ctx.variants.attentionDecode`), or
 * decode-paged where the subgroup kernel cannot take the head dim.
 *
 * @example
 * ctx.run(decodeAttention(ctx, { q, contextLens, blockTables, kCache, vCache, out }));
 */
export function decodeAttention(ctx: GpuContext, args: DecodePagedArgs): ProgramCall {
  const headDim = args.q.shape[2];
  if (ctx.variants.attentionDecode === 'attention/decode-subgroup' && decodeSubgroupSupported(ctx, headDim)) return decodeSubgroup(ctx, args);
  return decodePaged(ctx, args);
}
