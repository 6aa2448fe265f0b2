/** Progress arithmetic of the in-browser engine's loading: speed window, ETA, throttling, formatting. */
import { describe, expect, it } from 'vitest';
import { etaSeconds, formatBytes, formatEta, type LoadProgress, PhaseProgress, RateMeter } from '../../web/src/local/progress.ts';

/** A clock the test moves by hand. */
function clock(start = 1000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('RateMeter', () => {
  it('claims no speed over a span shorter than minSpanMs, then bytes per second over the window', () => {
    const c = clock();
    const m = new RateMeter({ now: c.now, windowMs: 5000, minSpanMs: 300 });
    m.reset(0);
    c.advance(100);
    expect(m.sample(1_000_000)).toBe(0);
    c.advance(900); // 1 s in, 2 MB
    expect(m.sample(2_000_000)).toBeCloseTo(2_000_000, 6);
  });

  it('forgets samples older than the window, so the speed follows a change of pace', () => {
    const c = clock();
    const m = new RateMeter({ now: c.now, windowMs: 2000, minSpanMs: 0 });
    m.reset(0);
    // 10 s at 1 MB/s …
    for (let s = 1; s <= 10; s++) {
      c.advance(1000);
      m.sample(s * 1_000_000);
    }
    expect(m.speed()).toBeCloseTo(1_000_000, 0);
    // … then 3 s at 4 MB/s: the 2 s window sees only the new pace.
    for (let s = 1; s <= 3; s++) {
      c.advance(1000);
      m.sample(10_000_000 + s * 4_000_000);
    }
    expect(m.speed()).toBeCloseTo(4_000_000, 0);
  });

  it('does not count bytes done before reset (a resumed download) as speed', () => {
    const c = clock();
    const m = new RateMeter({ now: c.now, minSpanMs: 0 });
    m.reset(7_000_000);
    c.advance(2000);
    expect(m.sample(8_000_000)).toBeCloseTo(500_000, 6);
  });

  it('rejects a window that is not positive', () => {
    expect(() => new RateMeter({ windowMs: 0 })).toThrow(RangeError);
  });
});

describe('etaSeconds', () => {
  it('is the bytes left over the speed, 0 when done, Infinity when the speed is unknown', () => {
    expect(etaSeconds(25, 100, 5)).toBe(15);
    expect(etaSeconds(100, 100, 0)).toBe(0);
    expect(etaSeconds(120, 100, 3)).toBe(0);
    expect(etaSeconds(0, 100, 0)).toBe(Number.POSITIVE_INFINITY);
  });
});

describe('PhaseProgress', () => {
  it('reports the first update at once, then at most one per interval, and always the end', () => {
    const c = clock();
    const seen: LoadProgress[] = [];
    const p = new PhaseProgress('download', 1000, (r) => seen.push(r), { now: c.now, intervalMs: 100, minSpanMs: 0 });
    p.update(0);
    for (let i = 1; i <= 9; i++) {
      c.advance(30);
      p.add(100);
    }
    // updates at t = 0 (first), then ≥100 ms apart: 120, 240 → 3 reports for 10 updates
    expect(seen.map((r) => r.loadedBytes)).toEqual([0, 400, 800]);
    c.advance(30);
    p.finish();
    p.finish(); // once
    expect(seen).toHaveLength(4);
    expect(seen[3]).toMatchObject({ phase: 'download', loadedBytes: 1000, totalBytes: 1000, etaSeconds: 0 });
    // 1000 bytes in 300 ms
    expect(seen[3].bytesPerSecond).toBeCloseTo(1000 / 0.3, 3);
    expect(seen[2].etaSeconds).toBeCloseTo(200 / (800 / 0.24), 6);
  });

  it('starts from the bytes already done and reports them without speed', () => {
    const c = clock();
    const seen: LoadProgress[] = [];
    const p = new PhaseProgress('download', 10_000, (r) => seen.push(r), { now: c.now, startBytes: 6000 });
    p.update(6000);
    expect(seen[0]).toMatchObject({ loadedBytes: 6000, totalBytes: 10_000, bytesPerSecond: 0, etaSeconds: Number.POSITIVE_INFINITY });
  });
});

describe('formatting', () => {
  it('formats sizes in SI units with three significant digits', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(999)).toBe('999 B');
    expect(formatBytes(1500)).toBe('1.50 KB');
    expect(formatBytes(21_547_153)).toBe('21.5 MB');
    expect(formatBytes(4_270_000_000)).toBe('4.27 GB');
    expect(formatBytes(512e9)).toBe('512 GB');
  });

  it('formats ETAs, with a dash while unknown', () => {
    expect(formatEta(Number.POSITIVE_INFINITY)).toBe('—');
    expect(formatEta(41.2)).toBe('42 s');
    expect(formatEta(185)).toBe('3 min 05 s');
    expect(formatEta(3720)).toBe('1 h 02 min');
  });
});
