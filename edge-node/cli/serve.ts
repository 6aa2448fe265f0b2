/**
 * `vlmesh serve [--model DIR]`: the edge node. With a model it serves the OpenAI-compatible API
 * (`/v1/chat/completions`, `/v1/models`) from a `LocalEngine` on this machine's GPU; without one,
 * the doctor page and `/health` (chat answers 503).
 */
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { basename, resolve } from 'node:path';
import type { Engine } from '../../shared/engine/engine.ts';
import { LocalEngine } from '../../shared/engine/local-engine.ts';
import type { GpuContext } from '../../shared/gpu/context.ts';
import { createDawnContext } from '../gpu/dawn.ts';
import { nodeImageDecoders } from '../io/image-decoders.ts';
import { type OpenedModel, openModelDir } from '../io/model-dir.ts';
import { startServer } from '../server/http.ts';
import { parseCidr } from '../server/media-fetch.ts';
import {
  DEFAULT_MAX_IMAGE_MB,
  DEFAULT_MAX_VIDEO_MB,
  DEFAULT_MAX_VIDEO_S,
  DEFAULT_MEDIA_TIMEOUT_S,
  type MediaOptions,
} from '../server/media-resolve.ts';
import { DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_QUEUE } from '../server/openai-api.ts';
import { progressReporter, resolveModelPath } from './pull.ts';
import { parse, portArg, UsageError } from './args.ts';
import { doctorReport } from './doctor.ts';

function positiveNumber(name: string, v: string | undefined, fallback: number, integer: boolean): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new UsageError(`--${name} must be a positive ${integer ? 'integer' : 'number'}, got "${v}"`);
  }
  return n;
}

/** The keys of an `--api-keys-file`: one a line, blank lines and `#` comments skipped. */
function readKeysFile(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`--api-keys-file: cannot read ${path}: ${(e as Error).message}`);
  }
  const keys = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  if (keys.length === 0) throw new UsageError(`--api-keys-file: ${path} holds no keys`);
  return keys;
}

export async function serveCommand(argv: string[]): Promise<number> {
  const { values } = parse(argv, {
    model: { type: 'string' },
    'served-model-name': { type: 'string' },
    dtype: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    'api-key': { type: 'string', multiple: true },
    'api-keys-file': { type: 'string' },
    'max-queue': { type: 'string' },
    'rate-limit': { type: 'string' },
    'max-model-len': { type: 'string' },
    'max-body-mb': { type: 'string' },
    'max-tokens': { type: 'string' },
    'fallback-url': { type: 'string' },
    'media-timeout-s': { type: 'string' },
    'max-image-mb': { type: 'string' },
    'max-video-mb': { type: 'string' },
    'max-video-s': { type: 'string' },
    'media-allow-host': { type: 'string', multiple: true },
    kiosk: { type: 'boolean', default: false },
  });
  if (values['fallback-url'] !== undefined) throw new UsageError('--fallback-url: the cloud fallback is not available in this version');
  if (values.kiosk) throw new UsageError('--kiosk: the kiosk page is not available in this version');
  const dtype = values.dtype;
  if (dtype !== undefined && dtype !== 'f32' && dtype !== 'f16') throw new UsageError(`--dtype must be f32 or f16, got "${dtype}"`);
  if (dtype !== undefined && values.model === undefined) throw new UsageError('--dtype needs --model DIR');
  const apiKeys = values['api-key'] ?? [];
  if (apiKeys.some((k) => k.trim() === '')) throw new UsageError('--api-key must not be empty');
  if (values['api-keys-file'] !== undefined) apiKeys.push(...readKeysFile(values['api-keys-file']));
  const maxQueue = positiveNumber('max-queue', values['max-queue'], DEFAULT_MAX_QUEUE, true);
  const rateLimitPerMinute = values['rate-limit'] === undefined ? undefined : positiveNumber('rate-limit', values['rate-limit'], 1, false);
  const maxModelLenArg = values['max-model-len'] === undefined ? undefined : positiveNumber('max-model-len', values['max-model-len'], 1, true);
  const maxBodyBytes = Math.floor(positiveNumber('max-body-mb', values['max-body-mb'], DEFAULT_MAX_BODY_BYTES / 2 ** 20, false) * 2 ** 20);
  const defaultMaxTokens = positiveNumber('max-tokens', values['max-tokens'], 1024, true);
  const port = portArg(values.port, 8080);
  const allowHosts = values['media-allow-host'] ?? [];
  for (const h of allowHosts) {
    if (h.trim() === '' || (h.includes('/') && !parseCidr(h))) throw new UsageError(`--media-allow-host takes a host name, an IP or a CIDR, got "${h}"`);
  }
  const media: MediaOptions = {
    timeoutMs: positiveNumber('media-timeout-s', values['media-timeout-s'], DEFAULT_MEDIA_TIMEOUT_S, false) * 1000,
    maxImageBytes: Math.floor(positiveNumber('max-image-mb', values['max-image-mb'], DEFAULT_MAX_IMAGE_MB, false) * 2 ** 20),
    maxVideoBytes: Math.floor(positiveNumber('max-video-mb', values['max-video-mb'], DEFAULT_MAX_VIDEO_MB, false) * 2 ** 20),
    maxVideoSeconds: positiveNumber('max-video-s', values['max-video-s'], DEFAULT_MAX_VIDEO_S, false),
    allowHosts,
  };

  let ctx: GpuContext | null = null;
  let opened: OpenedModel | null = null;
  let engine: Engine | null = null;
  let maxModelLen = maxModelLenArg;
  if (values.model !== undefined) {
    ctx = await createDawnContext({ label: 'vlmesh-serve' });
    const progress = (done: number, total: number) => {
      if (process.stderr.isTTY) process.stderr.write(`\rloading weights ${done}/${total}`);
    };
    const dir: string = await resolveModelPath(values.model, { onProgress: progressReporter(process.stderr) });
    opened = await openModelDir(ctx, dir, { onProgress: progress, dtype });
    if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
    const { tokenizer, template } = opened;
    if (!tokenizer || !template) throw new UsageError(`${values.model} has no tokenizer.json or chat template: it cannot chat`);
    maxModelLen ??= opened.config.text.maxPositionEmbeddings;
    engine = new LocalEngine({
      // Default name: the repo id when pulled from the hub, else the directory's name.
      modelId: values['served-model-name'] ?? (dir === values.model ? basename(resolve(dir)) : values.model),
      model: { ...opened, tokenizer, template },
      eosTokenIds: opened.generation?.eosTokenIds ?? [],
      decoders: nodeImageDecoders(),
      videoProcessor: opened.videoProcessor,
      maxModelLen,
    });
    media.videoSampling = opened.videoSampling;
  }
  const server = await startServer({
    host: values.host,
    port,
    doctor: doctorReport,
    gpuMemoryBytes: () => (ctx ? ctx.pool.stats.bytesInUse + ctx.pool.stats.bytesFree : null),
    api: { engine, apiKeys, maxBodyBytes, defaultMaxTokens, maxTokensLimit: maxModelLen, media, maxQueue, rateLimitPerMinute },
  });
  const addr = server.address() as AddressInfo;
  const what = engine ? `model ${engine.modelId} (OpenAI API at /v1)` : 'no model';
  console.log(`vlmesh serving on http://${addr.address}:${addr.port}/  ${what}  (Ctrl-C to stop)`);
  await new Promise<void>((done) => {
    const stop = () => {
      server.closeAllConnections?.();
      server.close(() => done());
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  await engine?.close();
  opened?.release();
  ctx?.destroy();
  return 0;
}
