import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../../edge-node/bin/vlmesh.mjs', import.meta.url));

function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [bin, ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe('vlmesh CLI', () => {
  it('doctor --json prints the adapter as JSON and exits 0', async () => {
    const r = await run(['doctor', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.ok).toBe(true);
    expect(report.backend).toBe('dawn');
    expect(typeof report.adapter.description).toBe('string');
    expect(report.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
    expect(report.variants.linearPrefill).toMatch(/^linear\//);
  });

  it('doctor without an adapter says what to install and exits non-zero', async () => {
    const r = await run(['doctor', '--json'], { VK_ICD_FILENAMES: '/nonexistent-icd.json', VK_DRIVER_FILES: '/nonexistent-icd.json' });
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(report.ok).toBe(false);
    expect(report.install).toContain('mesa-vulkan-drivers');
  });

  it('rejects unknown commands and flags with usage errors', async () => {
    expect((await run(['frobnicate'])).code).toBe(2);
    const r = await run(['doctor', '--nope']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--nope');
  });

  it('serve answers /health and the doctor page, then stops on SIGTERM', async () => {
    const p = spawn(process.execPath, [bin, 'serve', '--port', '0']);
    let out = '';
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`serve did not start: ${out}`)), 20_000);
      p.stdout.on('data', (d) => {
        out += d;
        const m = /http:\/\/[\d.]+:\d+\//.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[0]);
        }
      });
    });
    try {
      const health = await fetch(`${url}health`);
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ status: 'ok' });
      const page = await fetch(`${url}doctor`);
      expect(page.headers.get('content-type')).toContain('text/html');
      expect(await page.text()).toContain('vlmesh doctor');
      const doc = await (await fetch(`${url}api/doctor`)).json();
      expect(doc.ok).toBe(true);
      const missing = await fetch(`${url}../../package.json`);
      expect(missing.status).toBe(404);
    } finally {
      const closed = new Promise((r) => p.on('close', r));
      p.kill('SIGTERM');
      await closed;
    }
  });
});

describe('vlmesh chat', () => {
  const golden = fileURLToPath(new URL('../fixtures/golden/', import.meta.url));

  it('streams the same greedy answer as the official pipeline for an image prompt (f32)', async () => {
    const gold = JSON.parse(readFileSync(`${golden}e2e/case_one_image.json`, 'utf8'));
    const r = await run([
      'chat', '--model', `${golden}realvocab`, '--image', `${golden}e2e/img_a_256x320.png`,
      '--max-tokens', '8', '--dtype', 'f32', 'Describe this image.',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${gold.generated_text_skip_special}\n`);
    expect(r.stderr).toMatch(/8 generated, length; TTFT [\d.]+ s/);
  });

  it('explains a missing model and a bad flag value', async () => {
    const missing = await run(['chat', '--model', '/nonexistent-model-dir', 'hi']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('neither a directory nor a hub repo id');
    const empty = mkdtempSync(join(tmpdir(), 'vlmesh-empty-model-'));
    try {
      const noConfig = await run(['chat', '--model', empty, 'hi']);
      expect(noConfig.code).toBe(1);
      expect(noConfig.stderr).toContain('config.json is missing');
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
    const bad = await run(['chat', '--model', `${golden}realvocab`, '--temperature', 'hot', 'hi']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--temperature');
  });
});
