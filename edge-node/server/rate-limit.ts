/**
 * Per-client rate limiting for the API: one token bucket per client (an API key, or the client's
 * IP when the server has no keys). A bucket holds up to `perMinute` tokens and refills at
 * `perMinute / 60` tokens a second; each request takes one. An empty bucket answers "retry after
 * S seconds" (the time until the next token).
 *
 *   tokens ▲ perMinute ─┐    ┌──── refill perMinute/60 per second
 *          │            └─┐ ╱
 *          │              └┘ (a request takes 1; below 1 → 429, Retry-After = (1 - tokens) / rate)
 */

interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date (ms). */
  at: number;
}

/** What `RateLimiter.take` decided. */
export type RateDecision = { ok: true } | { ok: false; retryAfterS: number };

/**
 * @example
 * const limiter = new RateLimiter(60);
 * const d = limiter.take(apiKey);
 * if (!d.ok) res.setHeader('retry-after', String(d.retryAfterS));
 */
export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly perMs: number;
  private sweeps = 0;

  /**
   * @param perMinute requests a client may make per minute (also the burst size)
   * @param now clock in ms (tests)
   */
  constructor(
    private readonly perMinute: number,
    private readonly now: () => number = () => Date.now(),
  ) {
    if (!(perMinute > 0)) throw new RangeError(`perMinute must be positive, got ${perMinute}`);
    this.perMs = perMinute / 60_000;
  }

  /** Takes one token from `client`'s bucket, or says how long to wait (whole seconds, at least 1). */
  take(client: string): RateDecision {
    const t = this.now();
    const b = this.buckets.get(client) ?? { tokens: this.perMinute, at: t };
    b.tokens = Math.min(this.perMinute, b.tokens + (t - b.at) * this.perMs);
    b.at = t;
    this.buckets.set(client, b);
    if (++this.sweeps >= 1024) this.sweep(t);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterS: Math.max(1, Math.ceil((1 - b.tokens) / this.perMs / 1000)) };
  }

  /** Forgets full buckets, so that many one-off clients do not grow the map forever. */
  private sweep(t: number): void {
    this.sweeps = 0;
    for (const [k, b] of this.buckets) if (b.tokens + (t - b.at) * this.perMs >= this.perMinute) this.buckets.delete(k);
  }
}
