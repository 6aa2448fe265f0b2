/**
 * `/donate`: the tab shows its adapter and a measured matmul speed, registers with the node's
 * coordinator, and `GET /v1/mesh` lists it.
 */
import { expect, test } from '@playwright/test';
import { type E2eServer, SCREENSHOTS, startE2eServer } from './support/server.ts';

let server: E2eServer;

test.beforeAll(async () => {
  server = await startE2eServer([]);
});

test.afterAll(async () => {
  await server?.stop();
});

test('donate: adapter, measured GFLOP/s, registered with the coordinator', async ({ page }) => {
  await page.goto(`${server.url}donate`);
  await expect(page.getByRole('heading', { name: 'Donate this GPU' })).toBeVisible();
  await expect(page.getByRole('heading', { name: 'Adapter' })).toBeVisible();
  const adapterSection = page.getByRole('region', { name: 'Adapter' });
  await expect(adapterSection).toContainText('Memory (estimate)');
  await expect(adapterSection.locator('.memory')).toContainText(/\d+(\.\d+)? (kB|MB|GB|TB)/);

  const gflops = page.locator('.gflops');
  await expect(gflops).toBeVisible({ timeout: 60_000 });
  const measured = Number(await gflops.getAttribute('data-gflops'));
  expect(measured).toBeGreaterThan(0);
  await expect(gflops).toContainText('GFLOP/s');

  await expect(page.locator('[data-state="registered"]')).toBeVisible();
  await expect(page.getByText(/Last heartbeat/)).toBeVisible();

  const mesh = (await (await fetch(`${server.url}v1/mesh`)).json()) as { peers: { gflops: number; adapter: { vendor: string }; features: string[]; lastSeen: string }[] };
  expect(mesh.peers).toHaveLength(1);
  expect(mesh.peers[0]!.gflops).toBeCloseTo(measured, 6);
  expect(Date.now() - Date.parse(mesh.peers[0]!.lastSeen)).toBeLessThan(60_000);
  const vendor = mesh.peers[0]!.adapter.vendor;
  if (vendor) await expect(adapterSection.locator('.vendor')).toHaveText(vendor);

  await page.screenshot({ path: `${SCREENSHOTS}donate.png`, fullPage: true });
});
