/**
 * `vlmesh bench [kernels|model|ort|all] [--json] [--size S] [--quick] [--skip-vision] [--no-ort]
 * [--repeats N]`: the benchmark suite on this machine's adapter (../bench/suite.ts); no
 * sub-command means `all`.
 *
 * `vlmesh bench serve`: the load test of an OpenAI-compatible server (a running `vlmesh serve`,
 * or vLLM), like vLLM's `vllm bench serve`. Streams chat completions from `--concurrency` clients
 * until `--requests` are done or `--timeout-s` passes, then prints TTFT, ITL, TPOT, end-to-end
 * latency and throughput (a table, or `--json`). The measuring is in ../bench/load.ts.
 *
 * Loopback only unless `--allow-remote`: the load test is for a server on this machine.
 * Progress goes to stderr; the report to stdout. Exit status: 0 when every request sent
 * completed (at least one), 1 when some failed or none completed, 2 for usage errors.
 */
import { readFileSync } from 'node:fs';
import { BenchUrlError, DEFAULT_PROMPT, formatLoadReport, listModels, normalizeServerUrl, runLoad } from '../bench/load.ts';
import { formatBenchReport, runBench, type BenchPart } from '../bench/suite.ts';
import { PRESET_SIZES, type PresetSize } from '../../shared/model/qwen3-vl/presets.ts';
import { createDawnContext } from '../gpu/dawn.ts';
import { parse, UsageError } from './args.ts';

const SERVE_USAGE = `usage: vlmesh bench serve [--url http://127.0.0.1:8080] [--model NAME] [--api-key K]
         [--requests N] [--concurrency C] [--max-tokens T] [--prompt TEXT] [--follow-up TEXT] [--image FILE]
         [--turns K] [--session] [--temperature T] [--timeout-s S] [--allow-remote] [--json]`;

function numberFlag(name: string, v: string | undefined, fallback: number, kind: 'int' | 'positive' | 'nonnegative'): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  const ok = v.trim() !== '' && Number.isFinite(n) && (kind === 'int' ? Number.isInteger(n) && n > 0 : kind === 'positive' ? n > 0 : n >= 0);
  if (!ok) {
    const what = kind === 'int' ? 'a positive integer' : kind === 'positive' ? 'a positive number' : 'a number ≥ 0';
    throw new UsageError(`--${name} must be ${what}, got "${v}"`);
  }
  return n;
}

/** The media type of an image file from its first bytes (what the server's decoders accept). */
function imageMime(bytes: Uint8Array): string | null {
  const at = (i: number, s: number[]) => s.every((b, k) => bytes[i + k] === b);
  if (at(0, [0x89, 0x50, 0x4e, 0x47])) return 'image/png';
  if (at(0, [0xff, 0xd8, 0xff])) return 'image/jpeg';
  if (at(0, [0x52, 0x49, 0x46, 0x46]) && at(8, [0x57, 0x45, 0x42, 0x50])) return 'image/webp';
  if (at(0, [0x47, 0x49, 0x46, 0x38])) return 'image/gif';
  return null;
}

function imageDataUrl(path: string): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new UsageError(`--image: cannot read ${path}: ${(e as Error).message}`);
  }
  const mime = imageMime(bytes);
  if (!mime) throw new UsageError(`--image: ${path} is not a PNG, JPEG, WebP or GIF file`);
  return `data:${mime};base64,${bytes.toString('base64')}`;
}

/** Progress on stderr: one line redrawn in place on a terminal, else a line per 10 % done. */
function progressPrinter(out: NodeJS.WriteStream): { update: (p: { done: number; total: number; failed: number }) => void; end: () => void } {
  const start = performance.now();
  let lastDecile = 0;
  let drawn = false;
  const line = (p: { done: number; total: number; failed: number }) =>
    `bench: ${p.done}/${p.total} requests done${p.failed ? `, ${p.failed} failed` : ''} (${((performance.now() - start) / 1000).toFixed(1)} s)`;
  return {
    update: (p) => {
      if (out.isTTY) {
        out.write(`\r\x1b[2K${line(p)}`);
        drawn = true;
        return;
      }
      const decile = Math.floor((10 * p.done) / p.total);
      if (decile > lastDecile) {
        lastDecile = decile;
        out.write(`${line(p)}\n`);
      }
    },
    end: () => {
      if (drawn) out.write('\n');
    },
  };
}

async function benchServe(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      url: { type: 'string', default: 'http://127.0.0.1:8080' },
      model: { type: 'string' },
      'api-key': { type: 'string' },
      requests: { type: 'string' },
      concurrency: { type: 'string' },
      'max-tokens': { type: 'string' },
      prompt: { type: 'string' },
      'follow-up': { type: 'string' },
      image: { type: 'string' },
      turns: { type: 'string' },
      session: { type: 'boolean', default: false },
      temperature: { type: 'string' },
      'timeout-s': { type: 'string' },
      'allow-remote': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
    true,
  );
  if (positionals.length > 0) throw new UsageError(`bench serve takes no positional arguments, got "${positionals[0]}"`);
  let url: string;
  try {
    url = normalizeServerUrl(values.url, values['allow-remote']);
  } catch (e) {
    if (e instanceof BenchUrlError) throw new UsageError(`--url: ${e.message}`);
    throw e;
  }
  const requests = numberFlag('requests', values.requests, 32, 'int');
  const concurrency = numberFlag('concurrency', values.concurrency, 8, 'int');
  const maxTokens = numberFlag('max-tokens', values['max-tokens'], 32, 'int');
  const turns = numberFlag('turns', values.turns, 1, 'int');
  const temperature = numberFlag('temperature', values.temperature, 0, 'nonnegative');
  const timeoutS = numberFlag('timeout-s', values['timeout-s'], 300, 'positive');
  if (values.model !== undefined && values.model.trim() === '') throw new UsageError('--model must not be empty');
  if (values['api-key'] !== undefined && values['api-key'].trim() === '') throw new UsageError('--api-key must not be empty');
  if (values.prompt !== undefined && values.prompt.trim() === '') throw new UsageError('--prompt must not be empty');
  if (values['follow-up'] !== undefined && values['follow-up'].trim() === '') throw new UsageError('--follow-up must not be empty');
  const imageUrl = values.image === undefined ? undefined : imageDataUrl(values.image);
  const apiKey = values['api-key']?.trim();

  // Preflight: the server answers (else a clear error), and the model to ask for.
  const models = await listModels(url, apiKey);
  const model = values.model ?? models[0];
  if (model === undefined) throw new UsageError(`${url}/v1/models lists no model: pass --model NAME`);

  const interrupt = new AbortController();
  const onSigint = () => interrupt.abort(new Error('interrupted'));
  process.once('SIGINT', onSigint);
  const progress = progressPrinter(process.stderr);
  process.stderr.write(
    `bench: ${requests} requests${turns > 1 ? ` in conversations of ${turns} turns` : ''} to ${url} (model ${model}), concurrency ${concurrency}, max_tokens ${maxTokens}\n`,
  );
  let report: Awaited<ReturnType<typeof runLoad>>;
  try {
    report = await runLoad({
      url,
      model,
      apiKey,
      requests,
      concurrency,
      maxTokens,
      prompt: values.prompt ?? DEFAULT_PROMPT,
      ...(values['follow-up'] !== undefined ? { followUp: values['follow-up'] } : {}),
      imageUrl,
      turns,
      session: values.session,
      temperature,
      timeoutMs: timeoutS * 1000,
      signal: interrupt.signal,
      onProgress: progress.update,
    });
  } finally {
    progress.end();
    process.removeListener('SIGINT', onSigint);
  }
  process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatLoadReport(report));
  if (report.failed > 0) {
    const first = Object.entries(report.error_messages)[0];
    process.stderr.write(`bench: ${report.failed} of ${report.requests} requests failed${first ? ` (first: ${first[0]}: ${first[1]})` : ''}\n`);
  }
  return report.failed === 0 && report.completed > 0 ? 0 : 1;
}

const SUITE_USAGE = `usage: vlmesh bench [kernels|model|ort|all] [--json] [--size tiny|2b|4b|8b] [--quick] [--skip-vision] [--no-ort] [--repeats N]`;

const SUITE_PARTS: Record<string, readonly BenchPart[]> = {
  all: ['kernels', 'model', 'ort'],
  kernels: ['kernels'],
  model: ['model'],
  ort: ['ort'],
};

/** The benchmark suite: `part` is `all` (default), `kernels`, `model` or `ort`. */
async function benchSuite(part: string, argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      json: { type: 'boolean', default: false },
      size: { type: 'string', default: 'tiny' },
      quick: { type: 'boolean', default: false },
      'skip-vision': { type: 'boolean', default: false },
      'no-ort': { type: 'boolean', default: false },
      repeats: { type: 'string' },
    },
    true,
  );
  if (positionals.length > 0) throw new UsageError(`bench ${part} takes no positional arguments, got "${positionals[0]}"\n${SUITE_USAGE}`);
  const size = values.size as PresetSize;
  if (!PRESET_SIZES.includes(size)) throw new UsageError(`--size must be one of ${PRESET_SIZES.join(', ')}, got "${values.size}"`);
  const repeats = values.repeats === undefined ? undefined : numberFlag('repeats', values.repeats, 5, 'int');
  const parts = SUITE_PARTS[part].filter((p) => !(p === 'ort' && values['no-ort']));
  const log = (line: string) => process.stderr.write(`bench: ${line}\n`);
  const ctx = await createDawnContext({ label: 'vlmesh-bench' });
  try {
    const report = await runBench(ctx, { size, parts, quick: values.quick, skipVision: values['skip-vision'], repeats, onProgress: log });
    process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatBenchReport(report));
    return 0;
  } finally {
    ctx.destroy();
  }
}

const SUBCOMMANDS: Record<string, (argv: string[]) => Promise<number>> = {
  serve: benchServe,
  all: (argv) => benchSuite('all', argv),
  kernels: (argv) => benchSuite('kernels', argv),
  model: (argv) => benchSuite('model', argv),
  ort: (argv) => benchSuite('ort', argv),
};

/**
 * `vlmesh bench [sub-command] ...`: the suite (`all`, the default when the first argument is a
 * flag or absent; `kernels`, `model`, `ort`), or `serve`, the load test of a running server.
 */
export async function benchCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub.startsWith('-')) return benchSuite('all', argv);
  const run = SUBCOMMANDS[sub];
  if (!run) {
    throw new UsageError(`unknown bench sub-command "${sub}"; available: ${Object.keys(SUBCOMMANDS).join(', ')}\n${SUITE_USAGE}\n${SERVE_USAGE}`);
  }
  return run(rest);
}
