import keySrc from '../../../shaders/sample/order-key.wgsl?raw';
import src from '../../../shaders/sample/argmax.wgsl?raw';
import type { GpuContext } from '../../gpu/context.ts';
import { assembleWgsl, type ProgramCall, splitWorkgroups } from '../../gpu/program.ts';
import { expectTensor, type Tensor } from '../../gpu/tensor.ts';

export const ARGMAX = 'sample/argmax';

export interface ArgmaxArgs {
  /** Logits `[rows, V]`, f32. */
  logits: Tensor;
  /** Token ids `[rows]`, u32. */
  out: Tensor;
}

/**
 * Greedy decoding: `out[r] = argmax(logits[r])`, ties to the lowest index, NaN above every
 * number (torch.argmax). See `shaders/sample/argmax.wgsl`.
 *
 * @example
 * ctx.run(argmax(ctx, { logits, out: ids }));
 * const [token] = await ctx.read(ids);
 */
export function argmax(ctx: GpuContext, args: ArgmaxArgs): ProgramCall {
  const { logits, out } = args;
  expectTensor(logits, `${ARGMAX} logits`, { dtype: 'f32', rank: 2 });
  const [rows, V] = logits.shape;
  expectTensor(out, `${ARGMAX} out`, { dtype: 'u32', shape: [rows] });
  return {
    info: {
      name: ARGMAX,
      cacheKey: '',
      source: () => assembleWgsl(keySrc, src),
      access: ['read', 'read_write'],
    },
    bindings: [logits, out],
    uniforms: [{ u32: rows }, { u32: V }, { u32: 0 }, { u32: 0 }],
    workgroups: splitWorkgroups(rows, ctx.caps.limits.maxComputeWorkgroupsPerDimension),
  };
}
