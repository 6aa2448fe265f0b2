/**
 * `vlmesh serve [--model DIR] [--fallback-url U] [--kiosk [--kiosk-idle-s N]]`: the edge node. With
 * a model it serves the OpenAI-compatible API (`/v1/chat/completions`, `/v1/models`) from a
 * `LocalEngine` on this machine's GPU, and the model's files under `/models/<name>/` for the
 * in-browser engine; without one, `/health` and the pages (chat answers 503). The chat UI is the
 * built web app (dist/web, `npm run build:web`); until it is built `/` shows the doctor page.
 * `--kiosk` makes `/` the kiosk page, which clears itself after `--kiosk-idle-s` (default 120).
 * With `--fallback-url`, what this node cannot serve goes to that OpenAI-compatible upstream (see
 * server/fallback.ts); with it and no usable GPU, the node serves through the upstream alone.
 */
import { existsSync, readFileSync } from 'node:fs';
import { type AddressInfo, isIP } from 'node:net';
import { basename, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Engine } from '../../shared/engine/engine.ts';
import { LocalEngine } from '../../shared/engine/local-engine.ts';
import type { EnginePlanSettings } from '../../shared/engine/prompt.ts';
import { MemoryVisionCache, type VisionCache } from '../../shared/engine/vision-cache.ts';
import { DEFAULT_MAX_INPUT_PIXELS } from '../../shared/io/image/limits.ts';
import { DeviceLostError, GpuOutOfMemoryError, NoAdapterError, UnsupportedAdapterError } from '../../shared/errors.ts';
import type { GpuContext } from '../../shared/gpu/context.ts';
import { MeshCoordinator } from '../../shared/mesh/coordinator.ts';
import { createDawnContext } from '../gpu/dawn.ts';
import { nodeImageDecoders } from '../io/image-decoders.ts';
import { type OpenedModel, openModelDir } from '../io/model-dir.ts';
import { RedisUrlError, RedisVisionCache } from '../io/redis-vision-cache.ts';
import { hostMesh } from '../mesh/host.ts';
import { cleanupNodeWebRtc } from '../mesh/node-webrtc.ts';
import { createMeshEngine } from '../mesh/serve-mesh.ts';
import { DEFAULT_PROBE_INTERVAL_S, DEFAULT_RESPONSE_TIMEOUT_S, FallbackUrlError, normalizeFallbackUrl, UpstreamFallback } from '../server/fallback.ts';
import { startServer, stopServer } from '../server/http.ts';
import { parseCidr } from '../server/media-fetch.ts';
import {
  DEFAULT_MAX_IMAGE_MB,
  DEFAULT_MAX_VIDEO_MB,
  DEFAULT_MAX_VIDEO_S,
  DEFAULT_MEDIA_TIMEOUT_S,
  type MediaOptions,
} from '../server/media-resolve.ts';
import { DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_QUEUE } from '../server/openai-api.ts';
import { dtypeArg, parse, portArg, UsageError } from './args.ts';
import { doctorReport } from './doctor.ts';
import { progressReporter, resolveModelPath } from './pull.ts';

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

/** The `--fallback-*` flags as one UpstreamFallback, or null without `--fallback-url`. */
function fallbackFrom(values: {
  'fallback-url'?: string;
  'fallback-api-key'?: string;
  'fallback-model'?: string;
  'fallback-timeout-s'?: string;
  'fallback-probe-s'?: string;
}): UpstreamFallback | null {
  const url = values['fallback-url'];
  if (url === undefined) {
    for (const flag of ['fallback-api-key', 'fallback-model', 'fallback-timeout-s', 'fallback-probe-s'] as const) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} needs --fallback-url URL`);
    }
    return null;
  }
  try {
    normalizeFallbackUrl(url);
  } catch (e) {
    if (e instanceof FallbackUrlError) throw new UsageError(`--fallback-url: ${e.message}`);
    throw e;
  }
  // The key may come from the environment, so that it stays out of the process list.
  const apiKey = values['fallback-api-key'] ?? process.env.VLMESH_FALLBACK_API_KEY;
  if (apiKey !== undefined && apiKey.trim() === '') throw new UsageError('--fallback-api-key must not be empty');
  const model = values['fallback-model'];
  if (model !== undefined && model.trim() === '') throw new UsageError('--fallback-model must not be empty');
  return new UpstreamFallback({
    url,
    ...(apiKey ? { apiKey: apiKey.trim() } : {}),
    ...(model ? { model } : {}),
    responseTimeoutMs: positiveNumber('fallback-timeout-s', values['fallback-timeout-s'], DEFAULT_RESPONSE_TIMEOUT_S, false) * 1000,
    probeIntervalMs: positiveNumber('fallback-probe-s', values['fallback-probe-s'], DEFAULT_PROBE_INTERVAL_S, false) * 1000,
    onHealthChange: (h) =>
      process.stderr.write(
        `${JSON.stringify({ ts: new Date().toISOString(), level: h.healthy ? 'info' : 'warn', msg: 'fallback_health', url: h.url, healthy: h.healthy, ...(h.healthy ? {} : { error: h.lastError }) })}\n`,
      ),
  });
}

/** The shared vision cache on Redis; a malformed URL is a usage error. */
function redisVisionCache(url: string, ttlS: number): VisionCache {
  try {
    return new RedisVisionCache({
      url,
      ttlS,
      onError: (e) => process.stderr.write(`${JSON.stringify({ level: 'warn', msg: 'vision_cache_error', error: e.message })}\n`),
    });
  } catch (e) {
    if (e instanceof RedisUrlError) throw new UsageError(`--redis-url: ${e.message}`);
    throw e;
  }
}

/** GPU failures that leave a node with a fallback serving through the upstream alone. */
const isGpuUnavailable = (e: unknown) =>
  e instanceof NoAdapterError || e instanceof UnsupportedAdapterError || e instanceof GpuOutOfMemoryError || e instanceof DeviceLostError;

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
    'fallback-api-key': { type: 'string' },
    'fallback-model': { type: 'string' },
    'fallback-timeout-s': { type: 'string' },
    'fallback-probe-s': { type: 'string' },
    'media-timeout-s': { type: 'string' },
    'max-image-mb': { type: 'string' },
    'max-image-pixels': { type: 'string' },
    'max-video-mb': { type: 'string' },
    'max-video-s': { type: 'string' },
    'media-allow-host': { type: 'string', multiple: true },
    'max-num-seqs': { type: 'string' },
    'kv-cache-mb': { type: 'string' },
    'no-prefix-cache': { type: 'boolean', default: false },
    'session-ttl-s': { type: 'string' },
    'vision-cache-mb': { type: 'string' },
    'vision-cache-ttl-s': { type: 'string' },
    'no-vision-cache': { type: 'boolean', default: false },
    'redis-url': { type: 'string' },
    'mesh-token': { type: 'string' },
    'mesh-only': { type: 'boolean', default: false },
    kiosk: { type: 'boolean', default: false },
    'kiosk-idle-s': { type: 'string' },
  });
  if (values['kiosk-idle-s'] !== undefined && !values.kiosk) throw new UsageError('--kiosk-idle-s needs --kiosk');
  const kioskIdleSeconds = positiveNumber('kiosk-idle-s', values['kiosk-idle-s'], 120, false);
  const dtype = dtypeArg(values.dtype);
  const meshToken = values['mesh-token'];
  if (meshToken !== undefined && meshToken.trim() === '') throw new UsageError('--mesh-token must not be empty');
  if (values['mesh-only'] && meshToken === undefined) throw new UsageError('--mesh-only needs --mesh-token T');
  if (meshToken !== undefined && values.model === undefined) throw new UsageError('--mesh-token needs --model M (the coordinator runs the head: embeddings, vision, lm_head)');
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
  const maxImagePixels = positiveNumber('max-image-pixels', values['max-image-pixels'], DEFAULT_MAX_INPUT_PIXELS, true);
  const fallback = fallbackFrom(values);
  const maxNumSeqs = positiveNumber('max-num-seqs', values['max-num-seqs'], 16, true);
  const kvCacheBytes = values['kv-cache-mb'] === undefined ? undefined : Math.floor(positiveNumber('kv-cache-mb', values['kv-cache-mb'], 1, false) * 2 ** 20);
  const sessionTtlMs = positiveNumber('session-ttl-s', values['session-ttl-s'], 300, false) * 1000;
  const visionTtlS = positiveNumber('vision-cache-ttl-s', values['vision-cache-ttl-s'], 3600, false);
  if (values['no-vision-cache'] && (values['redis-url'] !== undefined || values['vision-cache-mb'] !== undefined)) {
    throw new UsageError('--no-vision-cache contradicts --redis-url / --vision-cache-mb');
  }
  // Parsed now so a bad URL is a usage error before any model loads.
  const visionCache: VisionCache | undefined = values['no-vision-cache']
    ? undefined
    : values['redis-url'] !== undefined
      ? redisVisionCache(values['redis-url'], visionTtlS)
      : new MemoryVisionCache({ maxBytes: positiveNumber('vision-cache-mb', values['vision-cache-mb'], 512, false) * 2 ** 20, ttlMs: visionTtlS * 1000 });

  let ctx: GpuContext | null = null;
  let opened: OpenedModel | null = null;
  let engine: Engine | null = null;
  let modelFiles: { dir: string; name: string } | null = null;
  let maxModelLen = maxModelLenArg;
  if (values.model !== undefined) {
    try {
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
      // Default name: the repo id when pulled from the hub, else the directory's name.
      const modelId = values['served-model-name'] ?? (dir === values.model ? basename(resolve(dir)) : values.model);
      // How either engine turns a request into a prompt: decoders, limits, context, video.
      const planSettings: EnginePlanSettings = { decoders: nodeImageDecoders(), maxImagePixels, videoProcessor: opened.videoProcessor, maxModelLen };
      engine = meshToken !== undefined
        ? createMeshEngine(opened, {
            modelId,
            eosTokenIds: opened.generation?.eosTokenIds ?? [],
            meshOnly: values['mesh-only'],
            ...planSettings,
            // One JSON line per mesh event (a peer dropped, a replan with its replay), like the request log.
            onEvent: (e) => process.stderr.write(`${JSON.stringify({ ts: new Date().toISOString(), level: e.kind === 'peer-lost' ? 'warn' : 'info', msg: `mesh_${e.kind.replace('-', '_')}`, ...e })}\n`),
            ...(values['mesh-only'] ? {} : { localFallback: { numBlocks: 1024 } }),
          })
        : new LocalEngine({
        modelId,
        model: { ...opened, tokenizer, template },
        eosTokenIds: opened.generation?.eosTokenIds ?? [],
        ...planSettings,
        maxNumSeqs,
        kvCacheBytes,
        prefixCaching: !values['no-prefix-cache'],
        sessionTtlMs,
        visionCache,
      });
      media.videoSampling = opened.videoSampling;
      modelFiles = { dir: resolve(dir), name: engine.modelId };
    } catch (e) {
      if (!fallback || !isGpuUnavailable(e)) throw e;
      // No adapter, or the model does not fit on it: this node still serves, through the upstream.
      process.stderr.write(`vlmesh serve: cannot run ${values.model} here (${(e as Error).message.split('\n')[0]}); serving through the fallback upstream only\n`);
      opened?.release();
      opened = null;
      ctx?.destroy();
      ctx = null;
      modelFiles = null;
      maxModelLen = maxModelLenArg;
    }
  }
  const webDir = fileURLToPath(new URL('../../dist/web/', import.meta.url));
  if (!existsSync(`${webDir}index.html`)) {
    process.stderr.write('vlmesh serve: the chat UI is not built (run `npm run build:web`, or start with `npm start`); `/` shows the adapter report until then\n');
  }
  const server = await startServer({
    host: values.host,
    port,
    webDir,
    kiosk: values.kiosk,
    kioskIdleSeconds,
    modelFiles,
    doctor: doctorReport,
    gpuMemoryBytes: () => (ctx ? ctx.pool.stats.bytesInUse + ctx.pool.stats.bytesFree : null),
    api: { engine, apiKeys, maxBodyBytes, defaultMaxTokens, maxTokensLimit: maxModelLen, media, maxQueue, rateLimitPerMinute, fallback },
    ...(meshToken !== undefined ? { mesh: { token: meshToken, ...(engine instanceof MeshCoordinator ? { pipeline: engine } : {}) } } : {}),
  });
  fallback?.start();
  const meshHost =
    meshToken !== undefined && engine instanceof MeshCoordinator
      ? await hostMesh({
          coordinator: engine,
          url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
          token: meshToken,
          // A node bound to one address offers WebRTC candidates on that address only (loopback stays loopback).
          ...(isIP(values.host) && values.host !== '0.0.0.0' && values.host !== '::' ? { bindAddress: values.host } : {}),
          log: (line) => process.stderr.write(`${line}\n`),
        })
      : null;
  const addr = server.address() as AddressInfo;
  const what = [
    engine ? `model ${engine.modelId} (OpenAI API at /v1)` : 'no model',
    ...(values.kiosk ? [`kiosk page at / (resets after ${kioskIdleSeconds} s idle)`] : []),
    ...(fallback ? [`fallback upstream ${fallback.baseUrl.href}`] : []),
  ].join(', ');
  console.log(`vlmesh serving on http://${addr.address}:${addr.port}/  ${what}  (Ctrl-C to stop)`);
  await new Promise<void>((done) => {
    const stop = () => {
      // The coordinator's own signaling client first (its socket is one the server waits on).
      meshHost?.close();
      void stopServer(server).then(done);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  fallback?.close();
  await engine?.close();
  if (meshHost) {
    // Let the data channels' closes go out before libdatachannel's threads stop.
    await new Promise((r) => setTimeout(r, 200));
    cleanupNodeWebRtc();
  }
  // The PeerJS server keeps two internal timers (message expiry, broken-connection checks) that
  // it offers no way to stop: once everything else is closed, leave without waiting on them.
  if (meshToken !== undefined) setTimeout(() => process.exit(), 500).unref();
  await visionCache?.close();
  opened?.release();
  ctx?.destroy();
  return 0;
}
