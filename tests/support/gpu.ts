/**
 * One GPU context per test file, from Dawn (gpu project) or navigator.gpu (browser project).
 *
 * With CI=true a missing adapter fails the file loudly; elsewhere the file's GPU tests are
 * skipped with a message that says what to install.
 *
 * @example
 * const ctx = await testContext();
 * describe.skipIf(!ctx)('my kernel', () => { it('…', async () => { const c = ctx!; … }); });
 */
import { environment, openContext } from '#test-device';
import { afterAll, inject } from 'vitest';
import type { GpuContext, GpuContextOptions } from '../../shared/gpu/context.ts';

export const NO_ADAPTER_HELP =
  'no WebGPU adapter. On Debian 12 install Mesa 25 lavapipe from bookworm-backports (README, "Requirements") ' +
  'for Node; the browser project needs Chromium with --enable-unsafe-webgpu.';

export async function testContext(options: GpuContextOptions = {}): Promise<GpuContext | null> {
  const ctx = await openContext(options);
  if (!ctx) {
    if (inject('ci')) throw new Error(`CI=true and ${NO_ADAPTER_HELP} (${environment})`);
    console.warn(`skipping GPU tests: ${NO_ADAPTER_HELP}`);
    return null;
  }
  afterAll(() => ctx.destroy());
  return ctx;
}

export { environment };

declare module 'vitest' {
  export interface ProvidedContext {
    ci: boolean;
  }
}
