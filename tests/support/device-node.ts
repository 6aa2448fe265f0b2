/** The test device in Node: Dawn through the `webgpu` package (lavapipe on CI). */
import { createDawnContext } from '../../edge-node/gpu/dawn.ts';
import type { GpuContext, GpuContextOptions } from '../../shared/gpu/context.ts';

export const environment = 'node-dawn';

export async function openContext(options: GpuContextOptions = {}): Promise<GpuContext | null> {
  return createDawnContext(options).catch((e: unknown) => {
    if ((e as { code?: string }).code === 'NO_ADAPTER') return null;
    throw e;
  });
}
