/**
 * Progress arithmetic for the local engine's loading: bytes done of a total, the speed over a
 * sliding window, the time left, and a throttle so a multi-GB download does not send thousands
 * of progress messages across the worker boundary.
 *
 *   samples:   (t0,b0) ─ (t1,b1) ─ … ─ (tn,bn)        only the last `windowMs` are kept
 *   speed    = (bn − b_first) / (tn − t_first)          bytes/s, 0 until the span is ≥ minSpanMs
 *   eta      = (total − bn) / speed                     Infinity while the speed is unknown or 0
 *
 * A resumed download starts its meter at the bytes already stored, so they never count as speed.
 * Pure (the clock is injectable): unit-tested in Node.
 */

/** Loading phases, in order: download the files (or find them cached), upload to the GPU, compile + warm up. */
export type LoadPhase = 'download' | 'load' | 'compile';

/** One progress report of `openLocalEngine`. */
export interface LoadProgress {
  phase: LoadPhase;
  /** Bytes done in this phase ('compile': steps done). */
  loadedBytes: number;
  /** Bytes this phase handles in all ('compile': steps in all). */
  totalBytes: number;
  /** Over the last few seconds; 0 until it is known. */
  bytesPerSecond: number;
  /** Seconds left at the current speed: Infinity while unknown, 0 when the phase is done. */
  etaSeconds: number;
}

/** A human size: "0 B", "512 B", "1.5 KB", "4.27 GB" (SI units, as download dialogs show). */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const sign = n < 0 ? '-' : '';
  let v = Math.abs(n);
  if (v < 1000) return `${sign}${Math.round(v)} B`;
  const units = ['KB', 'MB', 'GB', 'TB', 'PB'];
  let u = -1;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  const digits = v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return `${sign}${v.toFixed(digits)} ${units[u]}`;
}

/** A human duration for an ETA: "—" when unknown, "42 s", "3 min 05 s", "1 h 02 min". */
export function formatEta(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '—';
  const s = Math.ceil(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

export interface RateMeterOptions {
  /** Samples older than this are dropped (default 5000 ms). */
  windowMs?: number;
  /** No speed is claimed over a shorter span than this (default 300 ms). */
  minSpanMs?: number;
  /** Milliseconds clock (default performance.now). */
  now?: () => number;
}

/**
 * Speed of a growing byte count over a sliding window.
 *
 * @example
 * const m = new RateMeter();
 * m.reset(alreadyStored);
 * m.sample(loaded); // bytes/s
 */
export class RateMeter {
  private readonly windowMs: number;
  private readonly minSpanMs: number;
  private readonly now: () => number;
  private samples: { t: number; bytes: number }[] = [];

  constructor(o: RateMeterOptions = {}) {
    this.windowMs = o.windowMs ?? 5000;
    this.minSpanMs = o.minSpanMs ?? 300;
    this.now = o.now ?? (() => performance.now());
    if (!(this.windowMs > 0) || !(this.minSpanMs >= 0)) throw new RangeError('RateMeter: windowMs must be > 0 and minSpanMs ≥ 0');
  }

  /** Starts over from `bytes` done now (bytes done before this moment are not speed). */
  reset(bytes = 0): void {
    this.samples = [{ t: this.now(), bytes }];
  }

  /** Records the running total; answers the current speed in bytes/s (0 while unknown). */
  sample(bytes: number): number {
    const t = this.now();
    this.samples.push({ t, bytes });
    // Keep one sample at or before the window's start so the span covers the whole window.
    while (this.samples.length > 2 && this.samples[1].t <= t - this.windowMs) this.samples.shift();
    return this.speed();
  }

  /** The speed over the window, bytes/s (0 while the span is shorter than minSpanMs). */
  speed(): number {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last) return 0;
    const span = last.t - first.t;
    if (span < this.minSpanMs || span <= 0) return 0;
    return Math.max(0, ((last.bytes - first.bytes) * 1000) / span);
  }
}

/** Seconds to finish `total − loaded` at `bytesPerSecond`: 0 when done, Infinity when the speed is 0. */
export function etaSeconds(loaded: number, total: number, bytesPerSecond: number): number {
  const left = total - loaded;
  if (left <= 0) return 0;
  return bytesPerSecond > 0 ? left / bytesPerSecond : Number.POSITIVE_INFINITY;
}

export interface PhaseProgressOptions extends RateMeterOptions {
  /** Least time between two reports, except the first and the last (default 100 ms). */
  intervalMs?: number;
  /** Bytes already done when the phase starts (a resumed download): reported, not counted as speed. */
  startBytes?: number;
}

/**
 * One phase's progress: feed it running totals, it hands throttled `LoadProgress` reports to
 * `emit` (the first at once, then at most one per interval, and always the last from `finish`).
 *
 * @example
 * const p = new PhaseProgress('download', total, onProgress, { startBytes: stored });
 * p.add(chunk.byteLength);
 * p.finish();
 */
export class PhaseProgress {
  private readonly meter: RateMeter;
  private readonly intervalMs: number;
  private readonly now: () => number;
  private lastEmit = Number.NEGATIVE_INFINITY;
  private loaded: number;
  private done = false;

  constructor(
    readonly phase: LoadPhase,
    private total: number,
    private readonly emit: (p: LoadProgress) => void,
    o: PhaseProgressOptions = {},
  ) {
    this.now = o.now ?? (() => performance.now());
    this.meter = new RateMeter({ ...o, now: this.now });
    this.intervalMs = o.intervalMs ?? 100;
    this.loaded = o.startBytes ?? 0;
    this.meter.reset(this.loaded);
  }

  /** Bytes done so far. */
  get loadedBytes(): number {
    return this.loaded;
  }

  /** Sets the running total (bytes done) and maybe reports. */
  update(loaded: number): void {
    this.loaded = loaded;
    const speed = this.meter.sample(loaded);
    const t = this.now();
    if (t - this.lastEmit < this.intervalMs) return;
    this.lastEmit = t;
    this.report(speed);
  }

  /** Adds `bytes` to the running total. */
  add(bytes: number): void {
    this.update(this.loaded + bytes);
  }

  /** Marks the phase done (loaded = total) and reports it, once. */
  finish(): void {
    if (this.done) return;
    this.done = true;
    this.loaded = this.total;
    this.report(this.meter.sample(this.total));
  }

  private report(speed: number): void {
    this.emit({
      phase: this.phase,
      loadedBytes: this.loaded,
      totalBytes: this.total,
      bytesPerSecond: speed,
      etaSeconds: etaSeconds(this.loaded, this.total, speed),
    });
  }
}
