/**
 * The chat page over the server engine: attach an image, ask, see the answer stream in and equal
 * what the API returns for the same request; the conversation survives a reload (IndexedDB).
 */
import { expect, type Page, test } from '@playwright/test';
import { chatCompletion, type E2eServer, fileDataUrl, IMAGE_A, SCREENSHOTS, startE2eServer, TINY_MODEL } from './support/server.ts';

let server: E2eServer;

test.beforeAll(async () => {
  server = await startE2eServer(['--model', TINY_MODEL, '--dtype', 'f32']);
});

test.afterAll(async () => {
  await server?.stop();
});

const PROMPT = 'Describe this image.';

async function openSettings(page: Page, values: { maxTokens: string; temperature: string }): Promise<void> {
  await page.getByRole('button', { name: 'Settings' }).click();
  const dialog = page.getByRole('dialog', { name: 'Settings' });
  await expect(dialog).toBeVisible();
  await dialog.getByLabel('Max tokens').fill(values.maxTokens);
  await dialog.getByLabel('Temperature').fill(values.temperature);
  await dialog.getByRole('button', { name: 'Save' }).click();
  await expect(dialog).toBeHidden();
}

test('chat through the server engine with an image; the answer streams and survives a reload', async ({ page }) => {
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  await page.goto(server.url);
  await expect(page.locator('vlmesh-speed-line')).toContainText('Server · realvocab');
  await expect(page.locator('vlmesh-speed-line')).toContainText('ready');

  await openSettings(page, { maxTokens: '6', temperature: '0' });
  await page.getByLabel('Attach image or video').setInputFiles(IMAGE_A);
  await expect(page.getByRole('img', { name: 'img_a_256x320.png' })).toBeVisible();

  const requestSeen = page.waitForRequest((r) => r.url().endsWith('/v1/chat/completions') && r.method() === 'POST');
  const responseSeen = page.waitForResponse((r) => r.url().endsWith('/v1/chat/completions'));
  const box = page.getByRole('textbox', { name: 'Message' });
  await box.fill(PROMPT);
  await box.press('Enter');

  // What the page sent: a streaming request with the image inline and the settings applied.
  const sent = (await requestSeen).postDataJSON() as Record<string, unknown>;
  expect(sent).toMatchObject({ model: 'realvocab', stream: true, max_tokens: 6, temperature: 0 });
  expect((await responseSeen).headers()['content-type']).toContain('text/event-stream');

  const answer = page.locator('vlmesh-chat-message[data-role="assistant"]');
  await expect(answer).toHaveAttribute('state', 'done', { timeout: 60_000 });

  // The same request straight to the API (not streamed): the page shows exactly its answer.
  const expected = await chatCompletion(server.url, {
    model: 'realvocab',
    messages: [
      {
        role: 'user',
        content: [
          { type: 'image_url', image_url: { url: fileDataUrl(IMAGE_A, 'image/png') } },
          { type: 'text', text: PROMPT },
        ],
      },
    ],
    max_tokens: 6,
    temperature: 0,
  });
  expect(expected.length).toBeGreaterThan(0);
  const shown = (await answer.locator('.bubble').innerText()).trim();
  expect(shown).toBe(expected.trim());

  // The speed line: engine, TTFT and tokens/s of this answer.
  const speed = page.locator('vlmesh-speed-line');
  await expect(speed).toContainText(/TTFT \d+\.\d\d s/);
  await expect(speed).toContainText(/\d+\.\d tok\/s/);
  await expect(answer.getByRole('button', { name: 'Copy answer' })).toBeVisible();
  await expect(answer.getByRole('button', { name: 'Regenerate' })).toBeVisible();

  await page.screenshot({ path: `${SCREENSHOTS}chat.png` });
  await page.setViewportSize({ width: 375, height: 740 });
  await page.screenshot({ path: `${SCREENSHOTS}chat-375.png` });
  await page.setViewportSize({ width: 1280, height: 800 });

  // Reload: the conversation is listed and reopens with its answer.
  await page.reload();
  const nav = page.getByRole('navigation', { name: 'Conversations' });
  await expect(nav.getByRole('button', { name: PROMPT, exact: true })).toBeVisible();
  await nav.getByRole('button', { name: PROMPT, exact: true }).click();
  await expect(page.locator('vlmesh-chat-message[data-role="assistant"] .bubble')).toHaveText(expected.trim());
  await expect(page.getByRole('img', { name: /attached image 1/ })).toBeVisible();
  expect(pageErrors).toEqual([]);
});

test('switching to the local engine shows the download, then answers with the same greedy text as the server', async ({ page }) => {
  await page.goto(server.url);
  await openSettings(page, { maxTokens: '4', temperature: '0' });
  await page.getByRole('radio', { name: 'Local' }).check();
  const progress = page.locator('vlmesh-load-progress');
  await expect(progress).toBeVisible();
  await expect(progress.getByRole('progressbar')).toBeVisible();
  const speed = page.locator('vlmesh-speed-line');
  await expect(speed).toContainText(/Local \(f(16|32)\) · realvocab/, { timeout: 90_000 });
  await expect(progress).toBeHidden();

  const box = page.getByRole('textbox', { name: 'Message' });
  await box.fill('Name three colours.');
  await box.press('Enter');
  const answer = page.locator('vlmesh-chat-message[data-role="assistant"]');
  await expect(answer).toHaveAttribute('state', 'done', { timeout: 60_000 });
  const expected = await chatCompletion(server.url, {
    model: 'realvocab',
    messages: [{ role: 'user', content: 'Name three colours.' }],
    max_tokens: 4,
    temperature: 0,
  });
  expect((await answer.locator('.bubble').innerText()).trim()).toBe(expected.trim());
  await expect(answer).toContainText(/Local \(f(16|32)\)/);
});
