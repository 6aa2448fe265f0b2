import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const bin = fileURLToPath(new URL('../../edge-node/bin/vlmesh.mjs', import.meta.url));
const golden = fileURLToPath(new URL('../fixtures/golden/', import.meta.url));
const out = mkdtempSync(join(tmpdir(), 'vlmesh-eval-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function run(args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [bin, ...args]);
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code: code ?? -1, stderr }));
  });
}

type T = { shape: number[]; data: number[] };
const maxDiff = (a: T, b: T) => {
  expect(a.shape).toEqual(b.shape);
  return a.data.reduce((m, v, i) => Math.max(m, Math.abs(v - b.data[i])), 0);
};

describe('vlmesh eval-case writes outputs that pass the golden comparison', () => {
  it.each([
    ...['smallvocab', 'realvocab'].flatMap((m) => ['text', 'image', 'video'].map((k) => [m, `case_${k}.json`, m])),
    ['realvocab', 'e2e/case_two_images_one_turn.json', 'e2e'],
  ])('%s %s', async (model, file, caseDir) => {
    const casePath = caseDir === 'e2e' ? join(golden, file) : join(golden, model, file);
    const dest = join(out, `${model}-${file.replace(/\//g, '_')}`);
    const r = await run(['eval-case', '--model', join(golden, model), '--case', casePath, '--out', dest]);
    expect(r.code, r.stderr).toBe(0);
    const got = JSON.parse(readFileSync(dest, 'utf8'));
    const want = JSON.parse(readFileSync(casePath, 'utf8'));
    expect(got.position_ids).toEqual({ ...want.position_ids });
    expect(got.rope_deltas.data).toEqual(want.rope_deltas.data);
    expect(got.generated_ids.data).toEqual(want.generated_ids.data);
    expect(maxDiff(got.logits_last, want.logits_last ?? { shape: [want.logits.shape[1]], data: want.logits.data.slice(-want.logits.shape[1]) })).toBeLessThanOrEqual(2e-4);
    if (want.logits) expect(maxDiff(got.logits, want.logits)).toBeLessThanOrEqual(2e-4);
    const mod = want.video_vision_merged ? 'video' : 'image';
    if (want[`${mod}_vision_merged`]) {
      expect(maxDiff(got.vision_merged, want[`${mod}_vision_merged`])).toBeLessThanOrEqual(1e-4);
      want[`${mod}_deepstack`].forEach((d: T, k: number) => {
        expect(maxDiff(got.deepstack[k], d)).toBeLessThanOrEqual(1e-4);
      });
    }
  });

  it('fails with a usage error when arguments are missing', async () => {
    const r = await run(['eval-case', '--model', join(golden, 'smallvocab')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--case');
  });
});
