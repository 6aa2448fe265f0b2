/**
 * Up-front checks of the local engine, before anything is downloaded: WebGPU present, an
 * adapter, every weight tensor within the adapter's largest buffer, the weights within the
 * device's memory where the browser says how much it has, and room in the site's storage for
 * what is not cached yet. Only the model's small files and the safetensors headers are read
 * (from the weight store when cached, else with Range requests).
 *
 * The verdict is pure (`judgeLocalSupport`), so each reason is unit-tested without a browser.
 */
import { readSafetensorsHeader, type TensorInfo } from '../../../shared/io/safetensors.ts';
import { readText } from '../../../shared/io/byte-source.ts';
import { VlmeshError } from '../../../shared/errors.ts';
import { parseQwen3VLConfig } from '../../../shared/model/qwen3-vl/config.ts';
import type { StorageEstimateInfo } from './errors.ts';
import { modelDirectory, normalizeModelUrl, resolveModelFiles } from './model-files.ts';
import { weightFootprint } from './model-loader.ts';
import { formatBytes } from './progress.ts';
import { browserStorageEstimate, MODEL_CACHE_NAME, WeightStore } from './weight-store.ts';

/** Why the local engine cannot run here (stable codes for the UI). */
export type LocalSupportCode =
  | 'NO_WEBGPU'
  | 'INSECURE_CONTEXT'
  | 'NO_ADAPTER'
  | 'BUFFER_LIMIT'
  | 'DEVICE_MEMORY'
  | 'STORAGE_QUOTA'
  | 'NO_CACHE_STORAGE'
  | 'MODEL_UNAVAILABLE';

/** `checkLocalSupport`'s answer. */
export type LocalSupport =
  | {
      ok: true;
      dtype: 'f16' | 'f32';
      /** Bytes the weights will take on the GPU. */
      weightBytes: number;
      /** Bytes still to download (0 when the model is cached). */
      downloadBytes: number;
    }
  | { ok: false; reason: string; code: LocalSupportCode };

/** What `judgeLocalSupport` weighs. */
export interface SupportFacts {
  /** Adapter limits (maxBufferSize) and whether it has shader-f16. */
  adapter: { maxBufferSize: number; f16: boolean };
  /** The checkpoint's tensors (from the safetensors headers). */
  tensors: readonly TensorInfo[];
  /** `navigator.deviceMemory` (GiB, rounded down by the browser, capped at 8), when it is exposed. */
  deviceMemoryGiB: number | null;
  /** Bytes of the model not in the weight store yet. */
  downloadBytes: number;
  storage: StorageEstimateInfo;
  /** Force a dtype (default: f16 with shader-f16, else f32). */
  dtype?: 'f16' | 'f32';
}

/** The verdict on the facts gathered by `checkLocalSupport`. */
export function judgeLocalSupport(f: SupportFacts): LocalSupport {
  const dtype = f.dtype ?? (f.adapter.f16 ? 'f16' : 'f32');
  if (dtype === 'f16' && !f.adapter.f16) {
    return { ok: false, code: 'NO_ADAPTER', reason: 'f16 weights need the shader-f16 feature, which this GPU adapter does not have.' };
  }
  const { totalBytes, largest } = weightFootprint(f.tensors, dtype);
  if (largest.bytes > f.adapter.maxBufferSize) {
    return {
      ok: false,
      code: 'BUFFER_LIMIT',
      reason:
        `This model needs a GPU buffer of ${formatBytes(largest.bytes)} (${largest.name}, ${dtype}), but this GPU adapter allows at most ` +
        `${formatBytes(f.adapter.maxBufferSize)} per buffer (maxBufferSize). Choose a smaller model or use the server engine.`,
    };
  }
  // deviceMemory is capped at 8: only a value below the cap is a real bound.
  if (f.deviceMemoryGiB !== null && f.deviceMemoryGiB < 8 && totalBytes > f.deviceMemoryGiB * 2 ** 30 * 0.75) {
    return {
      ok: false,
      code: 'DEVICE_MEMORY',
      reason:
        `This model's weights take ${formatBytes(totalBytes)} (${dtype}), too much for a device that reports about ${f.deviceMemoryGiB} GB of memory. ` +
        'Choose a smaller model or use the server engine.',
    };
  }
  const { usageBytes, quotaBytes } = f.storage;
  if (f.downloadBytes > 0 && usageBytes !== null && quotaBytes !== null && quotaBytes - usageBytes < f.downloadBytes) {
    return {
      ok: false,
      code: 'STORAGE_QUOTA',
      reason:
        `The model needs ${formatBytes(f.downloadBytes)} of browser storage, but this site may store only ` +
        `${formatBytes(Math.max(0, quotaBytes - usageBytes))} more (${formatBytes(usageBytes)} used of ${formatBytes(quotaBytes)}). ` +
        'Free disk space or clear site data — or use the server engine.',
    };
  }
  return { ok: true, dtype, weightBytes: totalBytes, downloadBytes: f.downloadBytes };
}

/** The Cache API cache of model files, or null where the browser has none (some private modes). */
export async function openModelCache(): Promise<Cache | null> {
  if (typeof caches === 'undefined') return null;
  try {
    return await caches.open(MODEL_CACHE_NAME);
  } catch {
    return null;
  }
}

/**
 * Can this browser run the model at `modelUrl` (a directory URL: `/models/<name>/`) locally?
 *
 * @example
 * const s = await checkLocalSupport('/models/qwen3-vl-2b/');
 * if (!s.ok) showServerEngineOffer(s.reason);
 */
export async function checkLocalSupport(modelUrl: string, o: { dtype?: 'f16' | 'f32' } = {}): Promise<LocalSupport> {
  const nav = globalThis.navigator as (Navigator & { deviceMemory?: number }) | undefined;
  if (!nav?.gpu) {
    if (globalThis.isSecureContext === false) {
      return {
        ok: false,
        code: 'INSECURE_CONTEXT',
        reason: 'WebGPU is only available on secure pages (https:// or localhost); this page is not one. Use the server engine, or open the page over HTTPS.',
      };
    }
    return {
      ok: false,
      code: 'NO_WEBGPU',
      reason: 'This browser has no WebGPU (navigator.gpu is missing). Use a recent Chrome, Edge or Safari with WebGPU enabled — or the server engine.',
    };
  }
  let adapter: GPUAdapter | null = null;
  try {
    adapter = await nav.gpu.requestAdapter({ powerPreference: 'high-performance' });
  } catch {
    adapter = null;
  }
  if (!adapter) {
    return {
      ok: false,
      code: 'NO_ADAPTER',
      reason: 'WebGPU is present but no GPU adapter is available (blocklisted driver, GPU disabled, or no GPU). Use the server engine.',
    };
  }
  const cache = await openModelCache();
  if (!cache) {
    return {
      ok: false,
      code: 'NO_CACHE_STORAGE',
      reason: 'This browser does not let the page store the model (no Cache API; private browsing?). Use the server engine.',
    };
  }
  const store = new WeightStore({ cache });
  try {
    const base = normalizeModelUrl(modelUrl, globalThis.location?.href);
    const files = await resolveModelFiles(store, base);
    // Read the config and the headers where they are: the store, or a Range request (stored nowhere).
    const dir = modelDirectory(store, files, { missing: 'peek' });
    const configSrc = await dir.open('config.json');
    if (configSrc) parseQwen3VLConfig(JSON.parse(await readText(configSrc)), 'config.json');
    const tensors: TensorInfo[] = [];
    for (const f of files.weightFiles) {
      const src = await dir.open(f);
      if (src) tensors.push(...(await readSafetensorsHeader(src)).tensors);
    }
    return judgeLocalSupport({
      adapter: { maxBufferSize: adapter.limits.maxBufferSize, f16: adapter.features.has('shader-f16') },
      tensors,
      deviceMemoryGiB: typeof nav.deviceMemory === 'number' ? nav.deviceMemory : null,
      downloadBytes: await store.missingBytes([...files.records.values()]),
      storage: await browserStorageEstimate(),
      ...(o.dtype ? { dtype: o.dtype } : {}),
    });
  } catch (e) {
    const what = e instanceof VlmeshError || e instanceof Error ? e.message : String(e);
    return { ok: false, code: 'MODEL_UNAVAILABLE', reason: `The model could not be inspected: ${what}` };
  }
}
