/**
 * A Chromium `/donate` tab as a mesh stage, on loopback: `vlmesh serve --mesh-only` (computes no
 * layer) with one `vlmesh join` Node peer, then `/donate?token=T` joins over WebRTC (PeerJS on the
 * node's port), is assigned layers, loads their weights from `/models/<name>/` with Range
 * requests, and runs them: the greedy answer through the coordinator equals the single-node
 * (golden) one, and the page shows the layers it holds, the tokens it ran, the peers and the bytes.
 *
 * Chromium pairs its own interface addresses with the node's 127.0.0.1 candidate even when
 * launched with `--allow-loopback-in-peer-connection` and camera and microphone granted (seen
 * here: 192.0.2.2 ↔ 127.0.0.1), so outside a namespace holding only `lo` the WebRTC traffic would
 * go to a non-loopback address. The spec therefore runs its case in one: in a normal run its only
 * test starts this same spec again under `unshare -n` (root), where every process of the case —
 * server, `vlmesh join`, Chromium — sees only `lo`, and the page asserts that the selected pair is
 * 127.0.0.1 on both ends.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { fileURLToPath } from 'node:url';
import { expect, test } from '@playwright/test';
import { chromiumArgs } from '../../vitest.config.ts';
import { chatCompletion, type E2eServer, SCREENSHOTS, startE2eServer, TINY_MODEL } from './support/server.ts';

const bin = fileURLToPath(new URL('../../edge-node/bin/vlmesh.mjs', import.meta.url));
const CASE = JSON.parse(readFileSync(fileURLToPath(new URL('../fixtures/golden/e2e/case_system_prompt.json', import.meta.url)), 'utf8')) as {
  messages: unknown[];
  generated_text_skip_special: string;
};
const TOKEN = 'donate-stage-token';
const NUM_LAYERS = 3;

interface MeshBody {
  peers: { id: string; kind: string; range: [number, number] | null; state: string }[];
  hops: { peer: string; kind: string; range: [number, number] | null; state: string; forwards: number; meanRttMs: number; decodeBytesPerToken: number }[];
}

/** Whether this process sees no network interface but loopback (an `unshare -n` namespace). */
const loopbackOnly = Object.values(networkInterfaces())
  .flat()
  .every((i) => i?.internal);
const root = fileURLToPath(new URL('../../', import.meta.url));

let server: E2eServer;
let joiner: ChildProcess | undefined;
let joinerErr = '';

const meshOf = async () => (await (await fetch(`${server.url}v1/mesh`)).json()) as MeshBody;

test.use({
  launchOptions: {
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: [...chromiumArgs, '--allow-loopback-in-peer-connection'],
  },
});

test.describe('outside a loopback-only namespace', () => {
  test.skip(loopbackOnly, 'already inside one');
  test('runs the case again inside `unshare -n` (only lo)', () => {
    test.setTimeout(300_000);
    const probe = spawnSync('unshare', ['-n', 'true']);
    test.skip(probe.status !== 0, `cannot create a network namespace here (unshare -n: ${probe.stderr?.toString().trim() || probe.error?.message}); run this spec as root`);
    const file = fileURLToPath(import.meta.url).slice(root.length);
    const r = spawnSync('unshare', ['-n', 'sh', '-c', `ip link set lo up && exec npx playwright test ${file}`], { cwd: root, encoding: 'utf8', timeout: 280_000 });
    console.log(r.stdout);
    if (r.status !== 0) console.log(r.stderr);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/1 passed/);
  });
});

test.describe('inside a loopback-only namespace', () => {
test.skip(!loopbackOnly, 'runs inside `unshare -n` only (see the file comment)');

test.beforeAll(async () => {
  server = await startE2eServer(['--model', TINY_MODEL, '--dtype', 'f32', '--mesh-token', TOKEN, '--mesh-only', '--served-model-name', 'tiny']);
  joiner = spawn(process.execPath, [
    bin, 'join', '--coordinator', server.url, '--token', TOKEN, '--model', TINY_MODEL, '--dtype', 'f32',
    '--bind-address', '127.0.0.1', '--id', 'node-a', '--throughput', '10',
  ]);
  joiner.stderr?.on('data', (d) => (joinerErr += d));
  joiner.stdout?.resume();
  await expect.poll(async () => (await meshOf()).peers.find((p) => p.id === 'node-a')?.range, { timeout: 60_000 }).toEqual([0, NUM_LAYERS]);
});

test.afterAll(async () => {
  if (joiner && joiner.exitCode === null) {
    const gone = new Promise((r) => joiner!.on('exit', r));
    joiner.kill('SIGTERM');
    await gone;
  }
  await server?.stop();
});

test('a /donate tab joins the mesh as a stage; greedy tokens equal the single node', async ({ page, context }) => {
  test.setTimeout(180_000);
  await context.grantPermissions(['camera', 'microphone']);
  page.on('console', (m) => {
    if (m.type() === 'error') console.log(`page: ${m.text()}`);
  });
  await page.goto(`${server.url}donate?token=${TOKEN}&throughput=10`);
  const stageState = page.locator('.stage-state');
  await expect(stageState).toHaveAttribute('data-stage-state', 'serving', { timeout: 90_000 });
  // Equal throughput: the tab takes part of the layers, node-a keeps the rest (fewest moved).
  await expect(page.locator('.layers')).toHaveAttribute('data-range', /^\d+,\d+$/, { timeout: 60_000 });
  const mesh = await meshOf();
  const active = mesh.peers.filter((p) => p.state === 'active').sort((a, b) => a.range![0] - b.range![0]);
  expect(active.map((p) => p.kind).sort()).toEqual(['browser', 'node']);
  expect(active[0]!.range![0]).toBe(0);
  expect(active.at(-1)!.range![1]).toBe(NUM_LAYERS);
  expect(active[0]!.range![1]).toBe(active[1]!.range![0]);
  const tab = active.find((p) => p.kind === 'browser')!;
  await expect(page.locator('.layers')).toHaveAttribute('data-range', `${tab.range![0]},${tab.range![1]}`);

  const text = await chatCompletion(server.url, { model: 'tiny', messages: CASE.messages, max_tokens: 8, temperature: 0 });
  expect(text).toBe(CASE.generated_text_skip_special);

  // The tab ran the prompt and every decoded token but the last through its layers.
  await expect.poll(async () => Number(await page.locator('.tokens').getAttribute('data-tokens')), { timeout: 10_000 }).toBeGreaterThanOrEqual(7);
  await expect(page.locator('.peers')).toHaveText('2', { timeout: 10_000 });
  expect(Number(await page.locator('.bytes').getAttribute('data-received'))).toBeGreaterThan(0);
  // The WebRTC pair in use is loopback on both ends.
  await expect(page.locator('.route')).toHaveText(/^127\.0\.0\.1:\d+ ↔ 127\.0\.0\.1:\d+$/, { timeout: 10_000 });
  const hop = (await meshOf()).hops.find((h) => h.peer === tab.id)!;
  expect(hop.kind).toBe('browser');
  expect(hop.forwards).toBeGreaterThan(0);
  console.log(`donate-stage: tab ${tab.id} holds [${tab.range}] via ${await page.locator('.route').textContent()}, hop rtt ${hop.meanRttMs.toFixed(2)} ms, ${hop.decodeBytesPerToken} B/token`);
  await page.screenshot({ path: `${SCREENSHOTS}donate-stage.png`, fullPage: true });
});
});
