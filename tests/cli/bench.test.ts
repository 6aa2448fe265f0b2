/**
 * `vlmesh bench --json --size tiny --quick` as a real child process on this machine's adapter
 * (Dawn) and in Chromium (onnxruntime-web): every headline field of the JSON report exists, is
 * finite and positive, and every roofline fraction lies in (0, 1.5] (above 1 only by timing
 * noise), but for memory-bound products small enough to stay in the CPU's caches. Also: the table mode prints the sections, and a bad --size is a usage error.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { BenchReport } from '../../edge-node/bench/suite.ts';

const bin = fileURLToPath(new URL('../../edge-node/bin/vlmesh.mjs', import.meta.url));

function vlmesh(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [bin, ...args]);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

function positive(v: unknown, what: string): void {
  expect(typeof v, what).toBe('number');
  expect(Number.isFinite(v as number), what).toBe(true);
  expect(v as number, what).toBeGreaterThan(0);
}

function fraction(v: unknown, what: string): void {
  positive(v, what);
  expect(v as number, what).toBeLessThanOrEqual(1.5);
}

describe('vlmesh bench', () => {
  it('--json --size tiny --quick reports the adapter, limits, matmul, decode and the ORT ratio', async () => {
    const r = await vlmesh(['bench', '--json', '--size', 'tiny', '--quick']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as BenchReport;
    expect(report.adapter.vendor.length + report.adapter.description.length).toBeGreaterThan(0);
    expect(report.adapter.backend).toBe('dawn');
    positive(report.limits?.fma_gflops, 'limits.fma_gflops');
    positive(report.limits?.copy_GBps, 'limits.copy_GBps');

    const m = report.matmul!;
    positive(m.gflops, 'matmul.gflops');
    fraction(m.fraction_of_peak, 'matmul.fraction_of_peak');
    positive(m.ort_ratio, 'matmul.ort_ratio');
    positive(m.ort_ratio_decode, 'matmul.ort_ratio_decode');
    // A decode-shaped product whose weights are smaller than the copy probe's buffer can run from
    // the caches of the CPU that lavapipe runs on, faster than the copy bandwidth (seen: 1.51× for
    // 256 KiB of f16 weights): its memory fraction is only checked for sign.
    const copyBuffer = report.limits!.detail.copy.bytes / 2;
    const memoryFraction = (x: { N: number; K: number; weightDtype: string; fraction_of_bandwidth: number }, what: string) =>
      x.N * x.K * (x.weightDtype === 'f16' ? 2 : 4) >= copyBuffer ? fraction(x.fraction_of_bandwidth, what) : positive(x.fraction_of_bandwidth, what);
    memoryFraction({ ...m.decode.best, fraction_of_bandwidth: m.decode.fraction_of_bandwidth }, 'matmul.decode.fraction_of_bandwidth');
    const variants = new Set(m.results.map((x) => x.variant));
    // Every variant is measured; matmul-rows where the adapter supports it (subgroups).
    for (const v of ['linear/gemv', 'linear/matmul-tiled', 'linear/matmul-vec4']) expect(variants).toContain(v);
    for (const v of variants) expect(['linear/gemv', 'linear/matmul-tiled', 'linear/matmul-vec4', 'linear/matmul-rows']).toContain(v);
    for (const x of m.results) {
      if (x.bound === 'memory') memoryFraction(x, `${x.variant} ${x.phase} M=${x.M}`);
      else fraction(x.fraction, `${x.variant} ${x.phase} M=${x.M}`);
    }
    // The best prefill result is the fastest prefill-shaped row.
    expect(m.gflops).toBe(Math.max(...m.results.filter((x) => x.phase === 'prefill').map((x) => x.gflops)));

    // decode-subgroup where the adapter has fixed-size subgroups (lavapipe: 8).
    expect([...new Set(report.attention!.map((a) => a.kernel))].sort()).toEqual(['attention/decode-paged', 'attention/decode-subgroup', 'attention/flash-prefill']);
    for (const a of report.attention!) positive(a.ms, a.kernel);

    positive(report.decode?.tokens_per_s, 'decode.tokens_per_s');
    fraction(report.decode?.fraction_of_roofline, 'decode.fraction_of_roofline');
    const model = report.model!;
    expect(model.decode.map((d) => d.batch)).toEqual([1, 4, 16]);
    for (const d of model.decode) {
      positive(d.tokens_per_s, `decode batch ${d.batch}`);
      fraction(d.fraction_of_roofline, `decode batch ${d.batch} roofline`);
    }
    positive(model.ttft.ms, 'ttft');
    positive(model.prefill.tokens_per_s, 'prefill tokens/s');
    fraction(model.prefill.fraction_of_peak, 'prefill fraction');
    expect(model.vision.length).toBeGreaterThan(0);
    for (const v of model.vision) fraction(v.fraction_of_peak, `vision ${v.pixels}`);
    positive(model.memory.peak_bytes, 'peak memory');
    expect(model.memory.peak_bytes).toBeGreaterThanOrEqual(model.memory.weight_bytes);

    // ORT-web side by side twice: in this process on Dawn (the adapter of every figure above) and
    // in a Chromium page (SwiftShader).
    for (const [part, runtime] of [[report.ort!, 'node-dawn'], [report.ort_browser!, 'chromium']] as const) {
      expect('skipped' in part, JSON.stringify(part)).toBe(false);
      if ('skipped' in part) continue;
      expect(part.runtime).toBe(runtime);
      expect(part.ortVersion).toMatch(/^\d+\.\d+/);
      expect(part.shapes.map((s) => s.phase)).toEqual(['prefill', 'decode']);
      for (const s of part.shapes) {
        positive(s.ort.gflops, `ORT ${runtime} ${s.phase}`);
        positive(s.selected.gflops, `ours ${runtime} ${s.phase}`);
        expect(s.ratio).toBeCloseTo(s.selected.gflops / s.ort.gflops, 9);
      }
    }
    const dawnOrt = report.ort as Exclude<typeof report.ort, { skipped: string } | null>;
    expect(dawnOrt.adapter.description).toBe(report.adapter.description);
    expect(m.ort_ratio).toBe(dawnOrt.shapes[0].ratio);
    positive(m.ort_ratio_browser, 'matmul.ort_ratio_browser');
    // Progress went to stderr, the report alone to stdout.
    expect(r.stderr).toMatch(/bench: limits: fma/);
  }, 240_000);

  it('prints a table without --json and refuses an unknown size', async () => {
    const bad = await vlmesh(['bench', '--size', 'huge']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--size must be one of tiny, 2b, 4b, 8b/);
    const r = await vlmesh(['bench', 'kernels', '--quick', '--size', 'tiny']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/limits: FMA peak [\d.]+ GFLOP\/s, copy bandwidth [\d.]+ GB\/s/);
    expect(r.stdout).toMatch(/linear\/gemv\s+decode/);
    expect(r.stdout).toMatch(/best prefill: linear\/matmul-(vec4|tiled|rows) [\d.]+ GFLOP\/s/);
    expect(r.stdout).not.toMatch(/onnxruntime-web/);
  }, 120_000);
});
