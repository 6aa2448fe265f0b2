import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

/**
 * The web app (chat, donate and kiosk pages; one index.html, routed in web/src/main.ts) is built
 * from web/ into dist/web, which `vlmesh serve` serves. Other HTML pages in web/ (the local
 * engine's test harness) are built alongside when present. public/ holds the pages the server
 * serves on its own (the doctor page), so it is not copied into the build.
 */
const pages: Record<string, string> = { index: here('./web/index.html') };
if (existsSync(here('./web/local-harness.html'))) pages['local-harness'] = here('./web/local-harness.html');

export default defineConfig({
  root: 'web',
  base: '/',
  publicDir: false,
  build: {
    outDir: '../dist/web',
    emptyOutDir: true,
    target: 'es2022',
    // Model code and kernels land in lazily loaded chunks (donate page, local engine).
    chunkSizeWarningLimit: 2048,
    rolldownOptions: { input: pages },
  },
  worker: { format: 'es' },
  server: { host: '127.0.0.1' },
});
