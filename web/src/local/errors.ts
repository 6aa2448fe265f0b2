/**
 * Typed errors of the in-browser engine (weights download and cache, worker, adapter checks),
 * and their passage across the worker boundary.
 *
 * A structured clone keeps an Error's message but not its class or extra fields, so the worker
 * never throws through comlink: it answers `{ ok: false, error: SerializedError }` and the main
 * thread rebuilds the typed error with `deserializeError` (same class, code and fields for the
 * errors below; any other `VlmeshError` comes back as a `VlmeshError` with its code and name).
 */
import { VlmeshError } from '../../../shared/errors.ts';
import { formatBytes } from './progress.ts';

/** What the browser says about this site's storage (`navigator.storage.estimate()`), when it says. */
export interface StorageEstimateInfo {
  /** Bytes this site uses now, or null when unknown. */
  usageBytes: number | null;
  /** Bytes this site may use in all, or null when unknown. */
  quotaBytes: number | null;
  /** True when the browser granted persistent storage (no eviction under pressure). */
  persisted: boolean | null;
}

/**
 * The browser refused to store more of the model: the site's storage quota (or the disk) is full.
 * `neededBytes` is what the download still has to store; `availableBytes` is quota − usage.
 */
export class StorageQuotaError extends VlmeshError {
  readonly neededBytes: number;
  readonly usageBytes: number | null;
  readonly quotaBytes: number | null;
  readonly availableBytes: number | null;
  readonly persisted: boolean | null;

  constructor(neededBytes: number, estimate: StorageEstimateInfo, options?: { cause?: unknown }) {
    const { usageBytes, quotaBytes, persisted } = estimate;
    const available = usageBytes !== null && quotaBytes !== null ? Math.max(0, quotaBytes - usageBytes) : null;
    let room: string;
    if (available === null || usageBytes === null || quotaBytes === null) {
      room = 'the browser refused to store more (it did not say how much room is left)';
    } else if (available < neededBytes) {
      room = `this site may store only ${formatBytes(available)} more (${formatBytes(usageBytes)} used of a ${formatBytes(quotaBytes)} quota)`;
    } else {
      // The estimate is only an estimate: the real limit (or the disk's free space) was lower.
      room =
        `the browser refused to store it, although it reports ${formatBytes(available)} free for this site ` +
        `(${formatBytes(usageBytes)} used of a ${formatBytes(quotaBytes)} quota): the disk, or the browser's real limit, has less room`;
    }
    const advice =
      persisted === false
        ? 'Free disk space, allow this site to store data persistently, or clear other site data — or use the server engine.'
        : 'Free disk space or clear other site data — or use the server engine.';
    super('STORAGE_QUOTA', `Not enough browser storage for the model: it needs ${formatBytes(neededBytes)} more, but ${room}. ${advice}`, options);
    this.neededBytes = neededBytes;
    this.usageBytes = usageBytes;
    this.quotaBytes = quotaBytes;
    this.availableBytes = available;
    this.persisted = persisted;
  }
}

/** A model file could not be fetched (HTTP error, network failure, or a server that answered wrongly). */
export class ModelFetchError extends VlmeshError {
  readonly url: string;
  /** The HTTP status, or null for a network failure or a malformed answer. */
  readonly status: number | null;

  constructor(url: string, status: number | null, message: string, options?: { cause?: unknown }) {
    super('MODEL_FETCH', message, options);
    this.url = url;
    this.status = status;
  }
}

/** This browser or adapter cannot run the model locally; `reason` is what `checkLocalSupport` said. */
export class LocalEngineUnsupportedError extends VlmeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('LOCAL_UNSUPPORTED', message, options);
  }
}

/** The engine worker failed outside a request (script error, crash) or was terminated. */
export class EngineWorkerError extends VlmeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ENGINE_WORKER', message, options);
  }
}

/** An error as it crosses the worker boundary (structured-clone safe). */
export interface SerializedError {
  name: string;
  message: string;
  /** A VlmeshError's code; absent for other errors. */
  code?: string;
  stack?: string;
  /** Class-specific fields (StorageQuotaError's byte counts, ModelFetchError's url and status). */
  fields?: Record<string, string | number | boolean | null>;
}

/** A worker call's answer: its value, or the error it failed with. */
export type WorkerResult<T> = { ok: true; value: T } | { ok: false; error: SerializedError };

/** Turns any thrown value into a `SerializedError`. */
export function serializeError(e: unknown): SerializedError {
  if (!(e instanceof Error)) return { name: 'Error', message: String(e) };
  const out: SerializedError = { name: e.name, message: e.message, ...(e.stack ? { stack: e.stack } : {}) };
  if (e instanceof VlmeshError) out.code = e.code;
  if (e instanceof StorageQuotaError) {
    out.fields = { neededBytes: e.neededBytes, usageBytes: e.usageBytes, quotaBytes: e.quotaBytes, persisted: e.persisted };
  } else if (e instanceof ModelFetchError) {
    out.fields = { url: e.url, status: e.status };
  }
  return out;
}

const num = (v: unknown): number | null => (typeof v === 'number' ? v : null);

/** Rebuilds the typed error a `SerializedError` describes. */
export function deserializeError(s: SerializedError): Error {
  const f = s.fields ?? {};
  let e: Error;
  switch (s.code) {
    case 'STORAGE_QUOTA':
      e = new StorageQuotaError(num(f.neededBytes) ?? 0, {
        usageBytes: num(f.usageBytes),
        quotaBytes: num(f.quotaBytes),
        persisted: typeof f.persisted === 'boolean' ? f.persisted : null,
      });
      // The message was written in the worker with the same inputs; keep it verbatim.
      e.message = s.message;
      break;
    case 'MODEL_FETCH':
      e = new ModelFetchError(String(f.url ?? ''), num(f.status), s.message);
      break;
    case 'LOCAL_UNSUPPORTED':
      e = new LocalEngineUnsupportedError(s.message);
      break;
    case 'ENGINE_WORKER':
      e = new EngineWorkerError(s.message);
      break;
    case undefined:
      if (s.name === 'AbortError' && typeof DOMException === 'function') return new DOMException(s.message, 'AbortError');
      e = new Error(s.message);
      e.name = s.name;
      break;
    default:
      e = new VlmeshError(s.code, s.message);
      e.name = s.name;
  }
  if (s.stack) e.stack = s.stack;
  return e;
}

/** Unwraps a `WorkerResult`, throwing the typed error it carries. */
export function unwrapResult<T>(r: WorkerResult<T>): T {
  if (r.ok) return r.value;
  throw deserializeError(r.error);
}

/** Runs `f` and packs its outcome as a `WorkerResult` (what the worker's methods answer). */
export async function toResult<T>(f: () => Promise<T> | T): Promise<WorkerResult<T>> {
  try {
    return { ok: true, value: await f() };
  } catch (e) {
    return { ok: false, error: serializeError(e) };
  }
}
