/**
 * Embedding lookup. `gatherCalls` returns the dispatches (one per table window); `gather`
 * encodes them.
 */
import type { GpuContext } from '../../gpu/context.ts';
import { type GatherArgs, gatherCalls } from './gather.ts';

export { GATHER, type GatherArgs, gatherCalls, gatherWindowRows } from './gather.ts';

/**
 * out[t, :] = table[ids[t], :], encoded into the context's batch (one dispatch per table window).
 *
 * @example
 * gather(ctx, { ids, table: embedTokens, out: hidden, hostIds: promptIds });
 */
export function gather(ctx: GpuContext, args: GatherArgs): void {
  for (const call of gatherCalls(ctx, args)) ctx.run(call);
}
