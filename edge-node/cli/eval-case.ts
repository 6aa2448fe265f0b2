/**
 * `vlmesh eval-case --model DIR --case CASE.json --out OUT.json`: runs the model in f32 on the
 * inputs of a golden case file and writes the outputs in the same tensor encoding. It reads only
 * inputs (`input_ids`, `*_grid_thw`, `pixel_values*`, or the images a case names); never an
 * expected output.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { generate } from '../../shared/engine/generate.ts';
import { decodePng } from '../../shared/io/image/png.ts';
import { preprocessImage, processorConfigFromJson, QWEN3_VL_IMAGE_CONFIG } from '../../shared/io/image/preprocess.ts';
import type { Grid } from '../../shared/model/qwen3-vl/vision.ts';
import { deepstackForChunk, type VisualInputs } from '../../shared/model/qwen3-vl/model.ts';
import type { TraceFn } from '../../shared/model/qwen3-vl/trace.ts';
import { createDawnContext } from '../gpu/dawn.ts';
import { openModelDir } from '../io/model-dir.ts';
import { dtypeArg, parse, UsageError } from './args.ts';
import { progressReporter, resolveModelPath } from './pull.ts';

interface CaseTensor {
  dtype: 'float32' | 'int64';
  shape: number[];
  data: number[];
}

/** Shortest decimal that reads back as the same float32 (what the golden files use). */
export function shortestF32(v: number): string | number {
  if (!Number.isFinite(v)) return Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
  for (let p = 1; p <= 9; p++) {
    const s = Number(v.toPrecision(p));
    if (Math.fround(s) === v) return s;
  }
  return v;
}

function f32Tensor(data: Float32Array, shape: number[]): CaseTensor {
  return { dtype: 'float32', shape, data: Array.from(data, (x) => shortestF32(x) as number) };
}

function i64Tensor(data: ArrayLike<number>, shape: number[]): CaseTensor {
  return { dtype: 'int64', shape, data: Array.from(data) };
}

function gridsOf(t: unknown): Grid[] {
  const g = t as CaseTensor | undefined;
  if (!g) return [];
  const out: Grid[] = [];
  for (let i = 0; i < g.shape[0]; i++) out.push([g.data[3 * i], g.data[3 * i + 1], g.data[3 * i + 2]]);
  return out;
}

async function visualInputs(c: Record<string, unknown>, caseDir: string, modelDir: string): Promise<VisualInputs> {
  const v: VisualInputs = {};
  if (c.pixel_values) {
    v.images = { pixelValues: Float32Array.from((c.pixel_values as CaseTensor).data), grids: gridsOf(c.image_grid_thw) };
  } else if (Array.isArray(c.images) && c.images.length > 0) {
    // e2e cases name their PNGs: decode and preprocess them like the official processor.
    let cfg = QWEN3_VL_IMAGE_CONFIG;
    try {
      cfg = processorConfigFromJson(JSON.parse(await readFile(join(modelDir, 'preprocessor_config.json'), 'utf8')), cfg);
    } catch {
      // no preprocessor_config.json: the published settings
    }
    const parts: Float32Array[] = [];
    const grids: Grid[] = [];
    for (const img of c.images as { file: string }[]) {
      const decoded = await decodePng(new Uint8Array(await readFile(join(caseDir, img.file))));
      const r = preprocessImage(decoded, cfg);
      parts.push(r.pixelValues);
      grids.push(r.gridThw as Grid);
    }
    const total = parts.reduce((s, p) => s + p.length, 0);
    const pixelValues = new Float32Array(total);
    let o = 0;
    for (const p of parts) {
      pixelValues.set(p, o);
      o += p.length;
    }
    v.images = { pixelValues, grids };
  }
  if (c.pixel_values_videos) {
    v.videos = { pixelValues: Float32Array.from((c.pixel_values_videos as CaseTensor).data), grids: gridsOf(c.video_grid_thw) };
  }
  return v;
}

export async function evalCaseCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    model: { type: 'string' },
    case: { type: 'string' },
    out: { type: 'string' },
    'max-new-tokens': { type: 'string', default: '8' },
    dtype: { type: 'string' },
  });
  const dtype = dtypeArg(values.dtype) ?? 'f32';
  if (!values.model || !values.case || !values.out) throw new UsageError('eval-case needs --model DIR --case CASE.json --out OUT.json');
  const maxNew = Number(values['max-new-tokens']);
  if (!Number.isInteger(maxNew) || maxNew < 1) throw new UsageError(`--max-new-tokens must be a positive integer, got "${values['max-new-tokens']}"`);
  const c = JSON.parse(await readFile(values.case, 'utf8')) as Record<string, unknown>;
  const idsT = c.input_ids as CaseTensor | undefined;
  if (!idsT || !Array.isArray(idsT.data)) throw new UsageError(`${values.case}: no "input_ids" tensor`);
  const ids = idsT.data;
  const S = ids.length;
  const ctx = await createDawnContext({ label: 'vlmesh-eval-case' });
  try {
    const dir = await resolveModelPath(values.model, { onProgress: progressReporter(process.stderr) });
    const m = await openModelDir(ctx, dir, { dtype });
    const { model, config } = m;
    const visual = await visualInputs(c, dirname(values.case), values.model);
    const snaps: Record<string, Promise<Float32Array>> = {};
    const trace: TraceFn = (point, t, info) => {
      snaps[`${point}${info.index ?? ''}`] = ctx.readF32(t.view(0, info.shape.reduce((a, b) => a * b, 1)));
    };
    const prompt = model.prepare(ids, visual, trace);
    const V = config.text.vocabSize;
    const kv = model.createKvCache({ numBlocks: Math.ceil((S + maxNew) / 16) + 2, blockSize: 16 });
    const stepLogits: Promise<Float32Array>[] = [];
    const withAll = V <= 4096;
    // Full per-position logits (small vocabularies) come from a one-chunk forward; tokens from generate.
    let allLogits: Float32Array | null = null;
    if (withAll) {
      kv.blocks.grow(1, S);
      const hidden = ctx.empty([S, config.text.hiddenSize], 'f32', 'hidden');
      ctx.copy(prompt.embeds, hidden);
      model.forward(kv, { hidden, seq: 1, start: 0, positions: prompt.positions, deepstack: deepstackForChunk(prompt, 0, S) });
      const logits = model.logits(hidden, 0, S);
      allLogits = await ctx.readF32(logits);
      logits.release();
      hidden.release();
      kv.blocks.release(1);
    }
    const result = await generate(model, kv, prompt, {
      maxNewTokens: maxNew,
      seq: 2,
      onLogits: (l, step) => {
        if (step === 0) stepLogits.push(ctx.readF32(l));
      },
    });
    const out: Record<string, unknown> = {
      position_ids: i64Tensor([...prompt.positions[0], ...prompt.positions[1], ...prompt.positions[2]], [3, S]),
      rope_deltas: i64Tensor([prompt.ropeDelta], [1]),
      logits_last: f32Tensor(await stepLogits[0], [V]),
      generated_ids: i64Tensor(result.tokens, [result.tokens.length]),
    };
    if (allLogits) out.logits = f32Tensor(allLogits, [S, V]);
    const merged = snaps['vision.merged'];
    if (merged) {
      const H = config.text.hiddenSize;
      const m2 = await merged;
      out.vision_merged = f32Tensor(m2, [m2.length / H, H]);
      const ds: CaseTensor[] = [];
      for (let k = 0; snaps[`vision.deepstack${k}`]; k++) {
        const d = await snaps[`vision.deepstack${k}`];
        ds.push(f32Tensor(d, [d.length / H, H]));
      }
      out.deepstack = ds;
    }
    await writeFile(values.out, JSON.stringify(out));
    prompt.release();
    kv.release();
    m.release();
    console.error(`eval-case: ${S} prompt tokens, generated [${result.tokens.join(', ')}] → ${values.out}`);
    return 0;
  } finally {
    ctx.destroy();
  }
}
