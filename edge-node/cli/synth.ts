/**
 * `vlmesh synth --size tiny|2b|4b|8b --out DIR [--seed S]`: writes a random-weight checkpoint
 * with the real shapes (BF16 safetensors, sharded at 2 GiB with an index), config and the real
 * tokenizer / chat template / processor files, for benchmarks and memory tests.
 */
import { copyFile, mkdir, open, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseQwen3VLConfig } from '../../shared/model/qwen3-vl/config.ts';
import { PRESET_SIZES, type PresetSize, presetConfigJson } from '../../shared/model/qwen3-vl/presets.ts';
import { qwen3VLExpectedTensors } from '../../shared/model/qwen3-vl/weights.ts';
import { parse, UsageError } from './args.ts';

/** The real Qwen3 tokenizer and Qwen3-VL processor files shipped with the repository. */
const ASSETS = fileURLToPath(new URL('../../tests/fixtures/golden/realvocab/', import.meta.url));
const ASSET_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'chat_template.json',
  'preprocessor_config.json',
  'video_preprocessor_config.json',
  'generation_config.json',
];
const SHARD_BYTES = 2 * 2 ** 30;

/** Fills `out` with bf16 bit patterns of N(0, std²) (Box–Muller over a xorshift stream). */
function fillBf16(out: Uint16Array, std: number, state: { s: number }): void {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < out.length; i += 2) {
    let x = state.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const a = ((x >>> 0) + 1) / 4294967297;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const b = (x >>> 0) / 4294967296;
    state.s = x >>> 0 || 1;
    const r = Math.sqrt(-2 * Math.log(a)) * std;
    f[0] = r * Math.cos(2 * Math.PI * b);
    out[i] = (u[0] + 0x8000) >>> 16;
    if (i + 1 < out.length) {
      f[0] = r * Math.sin(2 * Math.PI * b);
      out[i + 1] = (u[0] + 0x8000) >>> 16;
    }
  }
}

function stdFor(name: string, shape: readonly number[]): { std: number; mean: number } {
  if (/norm.*weight$|_norm\.weight$/.test(name)) return { std: 0, mean: 1 };
  if (name.endsWith('.bias')) return { std: 0.02, mean: 0 };
  if (name.endsWith('embed_tokens.weight') || name.endsWith('pos_embed.weight')) return { std: 0.02, mean: 0 };
  const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
  return { std: 1 / Math.sqrt(fanIn), mean: 0 };
}

export async function synthCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    size: { type: 'string' },
    out: { type: 'string' },
    seed: { type: 'string', default: '1' },
  });
  const size = values.size as PresetSize;
  if (!PRESET_SIZES.includes(size)) throw new UsageError(`--size must be one of ${PRESET_SIZES.join(', ')}`);
  if (!values.out) throw new UsageError('synth needs --out DIR');
  const seed = Number(values.seed);
  if (!Number.isSafeInteger(seed)) throw new UsageError(`--seed must be an integer, got "${values.seed}"`);
  const out = values.out;
  await mkdir(out, { recursive: true });
  const configJson = presetConfigJson(size);
  const config = parseQwen3VLConfig(configJson);
  const tensors = qwen3VLExpectedTensors(config);
  // Assign tensors to shards of at most SHARD_BYTES.
  const shards: { name: string; shape: readonly number[]; bytes: number }[][] = [[]];
  let used = 0;
  for (const t of tensors) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * 2;
    if (used + bytes > SHARD_BYTES && shards[shards.length - 1].length > 0) {
      shards.push([]);
      used = 0;
    }
    shards[shards.length - 1].push({ name: t.name, shape: t.shape, bytes });
    used += bytes;
  }
  const total = tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1) * 2, 0);
  const fileName = (i: number) =>
    shards.length === 1 ? 'model.safetensors' : `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
  const weightMap: Record<string, string> = {};
  const state = { s: (seed * 2654435761) >>> 0 || 1 };
  let written = 0;
  const started = Date.now();
  const CHUNK = 1 << 22; // elements per write (8 MiB)
  const buf = new Uint16Array(CHUNK);
  for (let i = 0; i < shards.length; i++) {
    const header: Record<string, unknown> = { __metadata__: { format: 'pt', generator: 'vlmesh synth' } };
    let off = 0;
    for (const t of shards[i]) {
      header[t.name] = { dtype: 'BF16', shape: t.shape, data_offsets: [off, off + t.bytes] };
      off += t.bytes;
      weightMap[t.name] = fileName(i);
    }
    let headerText = JSON.stringify(header);
    headerText += ' '.repeat((8 - (headerText.length % 8)) % 8);
    const fh = await open(join(out, fileName(i)), 'w');
    try {
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(headerText.length));
      await fh.write(len);
      await fh.write(Buffer.from(headerText, 'utf8'));
      for (const t of shards[i]) {
        const { std, mean } = stdFor(t.name, t.shape);
        let left = t.bytes / 2;
        while (left > 0) {
          const n = Math.min(CHUNK, left);
          const view = buf.subarray(0, n);
          if (std === 0) view.fill(mean === 1 ? 0x3f80 : 0);
          else fillBf16(view, std, state);
          await fh.write(new Uint8Array(view.buffer, 0, n * 2));
          left -= n;
          written += n * 2;
        }
        if (process.stderr.isTTY) {
          const pct = ((100 * written) / total).toFixed(1);
          const mbs = written / 2 ** 20 / Math.max(0.001, (Date.now() - started) / 1000);
          process.stderr.write(`\rwriting ${pct}% (${(written / 2 ** 30).toFixed(2)} / ${(total / 2 ** 30).toFixed(2)} GiB, ${mbs.toFixed(0)} MiB/s)`);
        }
      }
    } finally {
      await fh.close();
    }
  }
  if (process.stderr.isTTY) process.stderr.write('\n');
  if (shards.length > 1) {
    await writeFile(join(out, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
  }
  await writeFile(join(out, 'config.json'), JSON.stringify(configJson, null, 2));
  for (const f of ASSET_FILES) await copyFile(join(ASSETS, f), join(out, f));
  console.log(`synth ${size}: ${tensors.length} tensors, ${(total / 2 ** 30).toFixed(2)} GiB in ${shards.length} file(s) → ${out}`);
  return 0;
}
