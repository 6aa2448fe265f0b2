/**
 * The in-browser engine end to end, in headless Chromium on SwiftShader WebGPU: the harness page
 * (web/local-harness.html) loads the tiny checkpoint served by `vlmesh serve` under
 * `/models/tiny/` into the engine worker, and
 *   - its greedy tokens (a text prompt and one with an image) are the Node engine's, and its text
 *     is what the server's API answers;
 *   - after a reload the weights come from the Cache API: no request reaches the server for any
 *     model file (counted by the page and by the server), and the tokens are the same;
 *   - a download cut off half-way resumes after a reload without fetching the stored pieces again;
 *   - a storage quota too small for the model gives the typed STORAGE_QUOTA error, explained.
 */
import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CDPSession, expect, type Page, test } from '@playwright/test';
import type { HarnessLoad, HarnessRun } from '../../web/src/local/harness.ts';
import type { LocalSupport } from '../../web/src/local/support.ts';
import { type Served, startServe, stopServe } from '../support/serve.ts';
import { type HarnessServer, startHarnessServer } from './support/local-servers.ts';
import { nodeEngineTokens, type TokenResult } from './support/local-node-tokens.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const MODEL = 'tests/fixtures/golden/realvocab';
const IMAGE = 'tests/fixtures/golden/e2e/img_a_256x320.png';
const FILES = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'chat_template.json', 'preprocessor_config.json', 'video_preprocessor_config.json', 'model.safetensors'];
const TEXT_PROMPT = 'Describe a cat in one sentence.';
const IMAGE_PROMPT = 'What is in this picture?';
const MAX_TOKENS = 6;
/** 4 MiB pieces: the 10 MB safetensors file comes in 3 Range requests. */
const CHUNK = 4 * 2 ** 20;

test.describe.configure({ mode: 'serial', timeout: 90_000 });

let served: Served | undefined;
let web: HarnessServer;
let expected: TokenResult[];
let apiText: string;
let modelBytes = 0;
let safetensorsBytes = 0;

test.beforeAll(async () => {
  test.setTimeout(60_000);
  // Vite compiles the harness and the worker while the server and the Node engine start.
  const [s, tokens, w] = await Promise.all([
    startServe(['--model', MODEL, '--dtype', 'f32', '--served-model-name', 'tiny']),
    nodeEngineTokens(MODEL, [
      { text: TEXT_PROMPT, maxTokens: MAX_TOKENS },
      { text: IMAGE_PROMPT, maxTokens: MAX_TOKENS, image: join(root, IMAGE) },
    ]),
    startHarnessServer({ models: { tiny: MODEL }, warmup: ['./local-harness.html', './src/local/harness.ts', './src/local/engine.worker.ts'] }),
  ]);
  served = s;
  expected = tokens;
  web = w;
  for (const f of FILES) modelBytes += (await stat(join(root, MODEL, f))).size;
  safetensorsBytes = (await stat(join(root, MODEL, 'model.safetensors'))).size;
  // The model files come from vlmesh serve's /models/<name>/ route (proxied by Vite, so the
  // page and the files share an origin); a server without that route: from disk, same layout.
  const route = await fetch(`${s.url}models/tiny/config.json`).catch(() => null);
  if (route?.ok) web.proxyModelsTo(s.url);
  console.log(`model files from ${route?.ok ? 'vlmesh serve /models/tiny/' : 'disk (vlmesh serve has no /models route)'}`);
  const res = await fetch(`${s.url}v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: TEXT_PROMPT }], max_tokens: MAX_TOKENS, temperature: 0 }),
  });
  apiText = ((await res.json()) as { choices: { message: { content: string } }[] }).choices[0].message.content;
});

test.afterAll(async () => {
  await web?.close();
  await stopServe(served?.p);
});

const harnessUrl = (query = '') => `${web.url}local-harness.html?model=/models/tiny/&chunk=${CHUNK}${query}`;

async function openHarness(page: Page, query = ''): Promise<void> {
  await page.goto(harnessUrl(query));
  await page.waitForFunction(() => 'vlmeshLocal' in window && document.getElementById('status')?.textContent?.startsWith('idle'));
}

const load = (page: Page) => page.evaluate(() => window.vlmeshLocal.load());
const check = (page: Page) => page.evaluate(() => window.vlmeshLocal.check());
const run = (page: Page, text: string, image?: string): Promise<HarnessRun> =>
  page.evaluate(([t, n, img]) => window.runPrompt(t, n, img), [text, MAX_TOKENS, image] as [string, number, string | undefined]);

const modelRequests = (from: number) => web.requests.slice(from).filter((r) => r.url.startsWith('/models/'));

test('greedy tokens match the Node engine, and a reload loads the weights from the cache', async ({ page }) => {
  const pageRequests: string[] = [];
  page.on('request', (r) => pageRequests.push(r.url()));
  await openHarness(page);

  const mark = web.requests.length;
  const support: LocalSupport = await check(page);
  expect(support).toMatchObject({ ok: true, dtype: 'f32', downloadBytes: modelBytes });

  const first: HarnessLoad = await load(page);
  expect(first.error).toBeNull();
  expect(first.ok).toBe(true);
  expect(first.info?.dtype).toBe('f32');
  expect(first.info?.downloadedBytes).toBe(modelBytes);
  // Progress: download → load → compile, each ending complete; the download's total is the model.
  const phases = first.progress.map((p) => p.phase).filter((p, i, a) => a[i - 1] !== p);
  expect(phases).toEqual(['download', 'load', 'compile']);
  const lastDownload = first.progress.filter((p) => p.phase === 'download').at(-1);
  expect(lastDownload).toMatchObject({ loadedBytes: modelBytes, totalBytes: modelBytes, etaSeconds: 0 });
  expect(first.progress.filter((p) => p.phase === 'load').at(-1)?.loadedBytes).toBe(first.info?.weightBytes);
  // The weights: a one-byte probe and the header reads of the check, then each 4 MiB piece once.
  const ranges = modelRequests(mark)
    .filter((r) => r.url.endsWith('/model.safetensors'))
    .map((r) => r.range);
  const pieces = [`bytes=0-${CHUNK - 1}`, `bytes=${CHUNK}-${2 * CHUNK - 1}`, `bytes=${2 * CHUNK}-${safetensorsBytes - 1}`];
  expect(ranges.filter((r) => r !== null && pieces.includes(r)).sort()).toEqual([...pieces].sort());
  expect(ranges).toContain('bytes=0-0');
  expect(ranges.every((r) => r !== null)).toBe(true); // never the whole file in one GET
  expect(pageRequests.filter((u) => u.includes('.safetensors')).length).toBeGreaterThan(0);

  const text = await run(page, TEXT_PROMPT);
  expect(text.tokenIds).toEqual(expected[0].tokenIds);
  expect(text.text).toBe(expected[0].text);
  expect(text.text).toBe(apiText);
  const image = await run(page, IMAGE_PROMPT, readFileSync(join(root, IMAGE)).toString('base64'));
  expect(image.tokenIds).toEqual(expected[1].tokenIds);

  // Reload: the same page, the weights now cached.
  await page.reload();
  await page.waitForFunction(() => 'vlmeshLocal' in window);
  const pageMark = pageRequests.length;
  const serverMark = web.requests.length;
  expect(await check(page)).toMatchObject({ ok: true, downloadBytes: 0 });
  const second = await load(page);
  expect(second.ok).toBe(true);
  expect(second.info?.downloadedBytes).toBe(0);
  const again = await run(page, TEXT_PROMPT);
  expect(again.tokenIds).toEqual(expected[0].tokenIds);
  expect(pageRequests.slice(pageMark).filter((u) => u.includes('/models/'))).toEqual([]);
  expect(modelRequests(serverMark)).toEqual([]);

  // Aborting the request's signal on the main thread stops the generation in the worker.
  const cut = await page.evaluate(() => window.runPrompt('Count from one to one hundred.', 64, undefined, 2));
  expect(cut.finishReason).toBe('abort');
  expect(cut.tokenIds.length).toBeGreaterThanOrEqual(2);
  expect(cut.tokenIds.length).toBeLessThan(64);
  expect(await page.evaluate(() => window.vlmeshLocal.stats())).toMatchObject({ running: 0, waiting: 0 });

  const info = first.info;
  const report = {
    firstLoadSeconds: +first.seconds.toFixed(2),
    phases: info?.seconds,
    cachedLoadSeconds: +second.seconds.toFixed(2),
    cachedPhases: second.info?.seconds,
    ttftSeconds: +again.ttftSeconds.toFixed(3),
    decodeTokensPerSecond: +again.decodeTokensPerSecond.toFixed(2),
    imageTtftSeconds: +image.ttftSeconds.toFixed(3),
    adapter: info?.adapter.description || info?.adapter.vendor,
  };
  test.info().annotations.push({ type: 'timings', description: JSON.stringify(report) });
  console.log(`local engine timings: ${JSON.stringify(report)}`);
});

test('a download cut off half-way resumes after a reload', async ({ page }) => {
  // 1 MiB pieces; the one at 5 MiB fails once (503), ending the first attempt.
  const chunk = 2 ** 20;
  web.failOnce({ path: /\/model\.safetensors$/, rangeStart: 5 * chunk });
  await page.goto(`${web.url}local-harness.html?model=/models/tiny/&chunk=${chunk}&warmup=0`);
  await page.waitForFunction(() => 'vlmeshLocal' in window);
  const failed = await load(page);
  expect(failed.ok).toBe(false);
  expect(failed.error).toMatchObject({ code: 'MODEL_FETCH', fields: { status: 503 } });
  await expect(page.locator('#error')).toContainText('HTTP 503');

  await page.reload();
  await page.waitForFunction(() => 'vlmeshLocal' in window);
  const mark = web.requests.length;
  const resumed = await load(page);
  expect(resumed.ok).toBe(true);
  // The first report already counts what the failed attempt stored; only the rest is fetched.
  const firstReport = resumed.progress[0];
  expect(firstReport.phase).toBe('download');
  expect(firstReport.loadedBytes).toBeGreaterThan(0);
  expect(resumed.info?.downloadedBytes).toBe(modelBytes - firstReport.loadedBytes);
  const pieces = modelRequests(mark).filter((r) => r.url.endsWith('/model.safetensors')).map((r) => r.range);
  expect(pieces.length).toBeLessThan(Math.ceil(safetensorsBytes / chunk));
  expect(pieces).toContain(`bytes=${5 * chunk}-${6 * chunk - 1}`);
  expect(pieces).not.toContain('bytes=0-0'); // the file's record was kept: no new probe
});

test('a storage quota too small for the model is explained', async ({ page, context }) => {
  // Chromium enforces the overridden quota on writes (navigator.storage.estimate() does not
  // show it): the download fails on its first large piece, with the browser's QuotaExceededError.
  const cdp: CDPSession = await context.newCDPSession(page);
  const origin = new URL(web.url).origin;
  await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: 4_000_000 });
  await openHarness(page, '&warmup=0');
  const failed = await load(page);
  expect(failed.ok).toBe(false);
  expect(failed.error).toMatchObject({ name: 'StorageQuotaError', code: 'STORAGE_QUOTA' });
  const needed = failed.error?.fields.neededBytes as number;
  expect(needed).toBeGreaterThan(CHUNK);
  expect(needed).toBeLessThanOrEqual(modelBytes);
  const alert = page.locator('#error');
  await expect(alert).toBeVisible();
  await expect(alert).toContainText('Not enough browser storage for the model: it needs');
  await expect(alert).toContainText('use the server engine');
  expect(await alert.getAttribute('data-code')).toBe('STORAGE_QUOTA');
  await cdp.send('Storage.overrideQuotaForOrigin', { origin });
});
