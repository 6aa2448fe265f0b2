/**
 * The Node engine's greedy answers, for the local-engine browser test to compare with: loads a
 * model directory on Dawn (as `vlmesh serve` does: openModelDir + LocalEngine + Node image
 * decoders) and runs each prompt of a JSON job list through `LocalEngine.stream`, printing
 * `{"results":[{tokenIds, text}, …]}` on stdout.
 *
 * Run as a child process (see `nodeEngineTokens`): it needs tsx and the WGSL loader hook.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** One prompt: text, optionally one image file attached before it. */
export interface TokenJob {
  text: string;
  maxTokens: number;
  image?: string;
}

export interface TokenResult {
  tokenIds: number[];
  text: string;
}

const root = fileURLToPath(new URL('../../../', import.meta.url));
const self = fileURLToPath(import.meta.url);

/**
 * Runs `jobs` through the Node engine in a child process (f32 weights).
 *
 * @example
 * const [r] = await nodeEngineTokens('tests/fixtures/golden/realvocab', [{ text: 'Hi', maxTokens: 6 }]);
 */
export function nodeEngineTokens(modelDir: string, jobs: TokenJob[]): Promise<TokenResult[]> {
  const hooks = pathToFileURL(`${root}edge-node/bin/wgsl-hooks.mjs`).href;
  const register = `data:text/javascript,import{register}from"node:module";register(${JSON.stringify(hooks)});`;
  const p = spawn(process.execPath, ['--import', 'tsx', '--import', register, self, modelDir, JSON.stringify(jobs)], { cwd: root });
  let out = '';
  let err = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (err += d));
  return new Promise((resolve, reject) => {
    p.on('error', reject);
    p.on('close', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('{"results"'));
      if (code !== 0 || !line) reject(new Error(`node engine exited with ${code}: ${out}${err}`));
      else resolve((JSON.parse(line) as { results: TokenResult[] }).results);
    });
  });
}

async function main(modelDir: string, jobs: TokenJob[]): Promise<void> {
  const { LocalEngine } = await import('../../../shared/engine/local-engine.ts');
  const { createDawnContext } = await import('../../../edge-node/gpu/dawn.ts');
  const { nodeImageDecoders } = await import('../../../edge-node/io/image-decoders.ts');
  const { openModelDir } = await import('../../../edge-node/io/model-dir.ts');
  const ctx = await createDawnContext({ label: 'local-engine-test' });
  const m = await openModelDir(ctx, modelDir, { dtype: 'f32' });
  if (!m.tokenizer || !m.template) throw new Error(`${modelDir} cannot chat`);
  const engine = new LocalEngine({
    modelId: 'tiny',
    model: { ...m, tokenizer: m.tokenizer, template: m.template },
    eosTokenIds: m.generation?.eosTokenIds ?? [],
    decoders: nodeImageDecoders(),
    videoProcessor: m.videoProcessor,
    maxModelLen: m.config.text.maxPositionEmbeddings,
  });
  const results: TokenResult[] = [];
  for (const [i, job] of jobs.entries()) {
    const images = job.image ? [{ bytes: new Uint8Array(await readFile(job.image)) }] : [];
    const tokenIds: number[] = [];
    let text = '';
    for await (const ev of engine.stream({
      id: `job-${i}`,
      messages: [{ role: 'user', content: [...images.map(() => ({ type: 'image' })), { type: 'text', text: job.text }] }],
      images,
      sampling: { maxTokens: job.maxTokens, temperature: 0, topP: 1, topK: 0 },
    })) {
      if (ev.kind === 'delta') {
        tokenIds.push(...ev.tokenIds);
        text += ev.text;
      }
    }
    results.push({ tokenIds, text });
  }
  await engine.close();
  m.release();
  ctx.destroy();
  process.stdout.write(`${JSON.stringify({ results })}\n`);
}

if (process.argv[1] === self) {
  main(process.argv[2], JSON.parse(process.argv[3]) as TokenJob[]).then(
    () => process.exit(0),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
