import { defineConfig } from '@playwright/test';
import { chromiumArgs } from './vitest.config.ts';

/**
 * End-to-end tests of the web app (tests/e2e): each spec starts its own `vlmesh serve` on port 0
 * (tests/e2e/support/server.ts) and drives Debian's Chromium (headless, SwiftShader WebGPU, the
 * same no-network flags as the browser unit tests). The global setup builds the app into dist/web
 * first, so `npx playwright test` works from a clean tree.
 */
export default defineConfig({
  testDir: 'tests/e2e',
  globalSetup: './tests/e2e/support/global-setup.ts',
  outputDir: 'dist/e2e-results',
  fullyParallel: false,
  workers: 1,
  retries: 0,
  timeout: 120_000,
  expect: { timeout: 30_000 },
  reporter: [['list']],
  use: {
    browserName: 'chromium',
    headless: true,
    viewport: { width: 1280, height: 800 },
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: chromiumArgs,
    },
    trace: 'off',
    screenshot: 'off',
  },
});
