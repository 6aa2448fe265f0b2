// `#test-device` resolves to device-node.ts (gpu project) or device-browser.ts (browser project).
declare module '#test-device' {
  import type { GpuContext, GpuContextOptions } from '../../shared/gpu/context.ts';
  export const environment: string;
  export function openContext(options?: GpuContextOptions): Promise<GpuContext | null>;
}
