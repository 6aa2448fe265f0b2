import { defineConfig } from 'vite';

// The web app (chat, donate, kiosk pages) lives in web/; static assets in public/.
export default defineConfig({
  root: 'web',
  publicDir: '../public',
  build: { outDir: '../dist/web', emptyOutDir: true },
  server: { host: '127.0.0.1' },
});
