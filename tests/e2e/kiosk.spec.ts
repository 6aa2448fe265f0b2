/**
 * The kiosk (`vlmesh serve --kiosk`): `/` is the locked-down page, "What is this?" with a photo
 * (no camera in headless Chromium, so the file picker) gets an answer, and the conversation clears
 * itself after the idle time (`--kiosk-idle-s 2`).
 */
import { expect, test } from '@playwright/test';
import { type E2eServer, IMAGE_A, SCREENSHOTS, startE2eServer, TINY_MODEL } from './support/server.ts';

let server: E2eServer;

test.beforeAll(async () => {
  // --max-tokens caps the kiosk's answers (it leaves max_tokens to the server).
  server = await startE2eServer(['--model', TINY_MODEL, '--dtype', 'f32', '--kiosk', '--kiosk-idle-s', '2', '--max-tokens', '4']);
});

test.afterAll(async () => {
  await server?.stop();
});

test('kiosk: ask "What is this?" with a photo, then the conversation resets after the idle time', async ({ page }) => {
  await page.goto(server.url);
  await expect(page.getByRole('heading', { name: 'Ask the assistant' })).toBeVisible();
  await expect(page.getByText('clears itself after 2 s')).toBeVisible();
  // Locked down: no settings, no engine picker, no conversation list.
  await expect(page.getByRole('button', { name: 'Settings' })).toHaveCount(0);
  await expect(page.locator('vlmesh-engine-picker')).toHaveCount(0);
  await expect(page.getByRole('navigation', { name: 'Conversations' })).toHaveCount(0);
  const bigButton = page.getByRole('button', { name: 'What is this?' }).last();
  await expect(bigButton).toBeEnabled();

  await page.getByLabel('Photo for “What is this?”').setInputFiles(IMAGE_A);
  const user = page.locator('vlmesh-chat-message[data-role="user"]');
  const answer = page.locator('vlmesh-chat-message[data-role="assistant"]');
  await expect(user).toContainText('What is this?');
  await expect(answer).toHaveAttribute('state', 'done', { timeout: 60_000 });
  const answeredAt = Date.now();
  expect((await answer.locator('.bubble').innerText()).trim().length).toBeGreaterThan(0);
  await expect(answer.locator('.error')).toHaveCount(0);
  await page.screenshot({ path: `${SCREENSHOTS}kiosk.png` });

  // Nobody touches it: after 2 s idle the conversation is gone and the big button is back.
  await expect(answer).toHaveCount(0, { timeout: 15_000 });
  await expect(user).toHaveCount(0);
  expect(Date.now() - answeredAt).toBeGreaterThanOrEqual(1000);
  await expect(bigButton).toBeVisible();
});

test('the kiosk page at /kiosk takes its idle time from ?idle= too', async ({ page }) => {
  await page.goto(`${server.url}kiosk?idle=300`);
  await expect(page.getByText('clears itself after 5 min')).toBeVisible();
});
