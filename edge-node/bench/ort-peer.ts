/**
 * Runs the side-by-side MatMul comparison with onnxruntime-web (shared/bench/peer.ts) in Debian's
 * Chromium: a Vite dev server serves web/bench/ (our kernels, compiled on the fly) and
 * onnxruntime-web's dist/ files under `/ort/`; Playwright opens the page headless with the test
 * suite's WebGPU flags and calls `window.vlmeshBench.run`.
 *
 * Vite, Playwright and onnxruntime-web are devDependencies: without them this part reports why it
 * was skipped instead of failing the whole benchmark.
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PeerOptions, PeerResult } from '../../shared/bench/peer.ts';
import { VlmeshError } from '../../shared/errors.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PAGE_DIR = join(ROOT, 'web', 'bench');

/** The comparison could not run (no Chromium, a missing devDependency, a page error). */
export class PeerBenchError extends VlmeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PEER_BENCH', message, options);
  }
}

export interface OrtPeerOptions extends PeerOptions {
  /** Chromium binary; default $CHROMIUM_PATH or /usr/bin/chromium. */
  chromiumPath?: string;
  /** Give up after this long (ms). */
  timeoutMs?: number;
  onProgress?: (line: string) => void;
}

const MIME: Record<string, string> = {
  '.mjs': 'text/javascript',
  '.js': 'text/javascript',
  '.wasm': 'application/wasm',
  '.map': 'application/json',
};

/** Serves onnxruntime-web's dist/ under /ort/ as plain files (Vite must not transform them). */
function ortStatic(distDir: string) {
  return (req: IncomingMessage, res: ServerResponse, next: () => void) => {
    const url = req.url ?? '';
    if (!url.startsWith('/ort/')) return next();
    const name = decodeURIComponent(url.slice('/ort/'.length).split('?')[0]);
    const file = normalize(join(distDir, name));
    if (!file.startsWith(distDir + sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.statusCode = 404;
      res.end('not found');
      return;
    }
    const ext = file.slice(file.lastIndexOf('.'));
    res.setHeader('Content-Type', MIME[ext] ?? 'application/octet-stream');
    res.setHeader('Content-Length', String(statSync(file).size));
    createReadStream(file).pipe(res);
  };
}

async function importOr<T>(what: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load();
  } catch (e) {
    throw new PeerBenchError(`${what} is not installed (a devDependency): run \`npm ci\` with dev dependencies`, { cause: e });
  }
}

/**
 * Runs the comparison; resolves with the page's result.
 *
 * @example
 * const r = await runOrtPeer({ shapes, repeats: 5, targetMs: 40, limits: true });
 */
export async function runOrtPeer(o: OrtPeerOptions): Promise<PeerResult> {
  const chromium = o.chromiumPath ?? process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
  if (!existsSync(chromium)) throw new PeerBenchError(`no Chromium at ${chromium} (set CHROMIUM_PATH, or install Debian's chromium)`);
  let ortDist: string;
  try {
    // The package's main entry lives in dist/, next to the browser bundles and .wasm files.
    ortDist = dirname(createRequire(import.meta.url).resolve('onnxruntime-web'));
  } catch (e) {
    throw new PeerBenchError('onnxruntime-web is not installed (a devDependency): run `npm ci` with dev dependencies', { cause: e });
  }
  const vite = await importOr('vite', () => import('vite'));
  const { chromium: pwChromium } = await importOr('playwright', () => import('playwright'));
  const { chromiumArgs } = await importOr('vitest (for the shared Chromium flags)', () => import('../../vitest.config.ts'));
  const server = await vite.createServer({
    configFile: false,
    root: PAGE_DIR,
    logLevel: 'error',
    clearScreen: false,
    publicDir: false,
    // Nothing to pre-bundle: the page imports only relative TypeScript and the /ort/ files.
    optimizeDeps: { noDiscovery: true, include: [] },
    server: { host: '127.0.0.1', port: 0, strictPort: false, hmr: false, watch: null, fs: { allow: [ROOT] } },
    plugins: [{ name: 'vlmesh-bench-ort', configureServer: (s) => void s.middlewares.use(ortStatic(ortDist)) }],
  });
  const timeoutMs = o.timeoutMs ?? 600_000;
  let browser: Awaited<ReturnType<typeof pwChromium.launch>> | null = null;
  try {
    await server.listen();
    const url = server.resolvedUrls?.local[0];
    if (!url) throw new PeerBenchError('the bench page server did not report its address');
    browser = await pwChromium.launch({ executablePath: chromium, args: chromiumArgs, headless: true });
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'log') o.onProgress?.(`[chromium] ${m.text()}`);
      else if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(e.message));
    page.setDefaultTimeout(timeoutMs);
    await page.goto(url);
    await page.waitForFunction(() => 'vlmeshBench' in window);
    const { chromiumPath: _c, timeoutMs: _t, onProgress: _p, ...pageOptions } = o;
    try {
      return await page.evaluate((opts) => window.vlmeshBench.run(opts), pageOptions as PeerOptions);
    } catch (e) {
      throw new PeerBenchError(`the bench page failed: ${(e as Error).message}${errors.length ? `\n${errors.slice(0, 5).join('\n')}` : ''}`, { cause: e });
    }
  } finally {
    await browser?.close();
    await server.close();
  }
}
