/** The test device in the browser project: `navigator.gpu` (SwiftShader in headless Chromium). */
import { createGpuContext, type GpuContext, type GpuContextOptions } from '../../shared/gpu/context.ts';

export const environment = 'browser';

export async function openContext(options: GpuContextOptions = {}): Promise<GpuContext | null> {
  if (!('gpu' in navigator) || !navigator.gpu) return null;
  return createGpuContext(navigator.gpu, options).catch((e: unknown) => {
    if ((e as { code?: string }).code === 'NO_ADAPTER') return null;
    throw e;
  });
}
