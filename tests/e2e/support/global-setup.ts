/**
 * Playwright global setup: builds the web app (Vite, vite.config.ts) into dist/web, which the
 * `vlmesh serve` instances of the specs serve.
 */
import { fileURLToPath } from 'node:url';
import { build } from 'vite';

export default async function globalSetup(): Promise<void> {
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  await build({ configFile: `${root}vite.config.ts`, root: `${root}web`, logLevel: 'warn' });
}
