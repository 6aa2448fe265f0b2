import { fileURLToPath } from 'node:url';
import { playwright } from '@vitest/browser-playwright';
import { defineConfig } from 'vitest/config';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const ci = process.env.CI === 'true' || process.env.CI === '1';

/** Chromium flags: WebGPU on, and nothing leaves the machine (see README, "Browser tests"). */
export const chromiumArgs = [
  '--enable-unsafe-webgpu',
  // SwiftShader compiles Vulkan's zero-initialised workgroup memory element by element (~1 ms per
  // word per pipeline); Dawn's own zero-init loop is equivalent and compiles in constant time.
  '--disable-dawn-features=use_vulkan_zero_initialize_workgroup_memory_extension',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-quic',
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

export default defineConfig({
  test: {
    provide: { ci },
    projects: [
      {
        test: {
          name: 'unit',
          include: ['tests/unit/**/*.test.ts'],
          environment: 'node',
        },
      },
      {
        resolve: {
          alias: {
            '#test-device': here('./tests/support/device-node.ts'),
            '#fixtures': here('./tests/support/fixtures-node.ts'),
          },
        },
        test: {
          name: 'gpu',
          // tests/gpu runs in Node (Dawn) and, below, in Chromium; tests/cli and tests/model need Node.
          include: ['tests/gpu/**/*.test.ts', 'tests/cli/**/*.test.ts', 'tests/model/**/*.test.ts'],
          environment: 'node',
          pool: 'forks',
          testTimeout: 120_000,
          hookTimeout: 60_000,
          provide: { ci },
        },
      },
      {
        resolve: {
          alias: {
            '#test-device': here('./tests/support/device-browser.ts'),
            '#fixtures': here('./tests/support/fixtures-browser.ts'),
          },
        },
        test: {
          name: 'browser',
          include: ['tests/gpu/**/*.test.ts'],
          testTimeout: 180_000,
          hookTimeout: 60_000,
          provide: { ci },
          browser: {
            enabled: true,
            headless: true,
            screenshotFailures: false,
            // Loopback by address: some fresh machines have no "localhost" in /etc/hosts.
            api: { host: '127.0.0.1' },
            provider: playwright({
              launchOptions: {
                executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
                args: chromiumArgs,
              },
            }),
            instances: [{ browser: 'chromium' }],
          },
        },
      },
    ],
  },
});
