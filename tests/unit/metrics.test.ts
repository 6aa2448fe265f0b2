/**
 * The Prometheus registry and the `vlmesh:` metric set: the 0.0.4 text format (HELP/TYPE lines,
 * label escaping, number formatting), histogram buckets / sum / count, label validation, and the
 * live gauges read at scrape time. Every rendering is run through a strict parser.
 */
import { describe, expect, it } from 'vitest';
import { escapeLabelValue, formatValue, Registry, ServingMetrics } from '../../shared/engine/metrics.ts';
import { parsePrometheus, sampleValue } from '../support/prometheus-parse.ts';

describe('Registry: text exposition format 0.0.4', () => {
  it('renders HELP and TYPE before the samples, and ends with a newline', () => {
    const r = new Registry();
    const c = r.counter({ name: 'app:hits_total', help: 'Hits.\nSecond line with a \\ backslash.', labelNames: ['code'] });
    c.inc({ code: '200' });
    c.inc({ code: '200' }, 2);
    c.inc({ code: '404' });
    const g = r.gauge({ name: 'app_temp', help: 'Temperature.' });
    g.set({}, -1.5);
    const text = r.render();
    expect(text).toBe(
      [
        '# HELP app:hits_total Hits.\\nSecond line with a \\\\ backslash.',
        '# TYPE app:hits_total counter',
        'app:hits_total{code="200"} 3',
        'app:hits_total{code="404"} 1',
        '# HELP app_temp Temperature.',
        '# TYPE app_temp gauge',
        'app_temp -1.5',
        '',
      ].join('\n'),
    );
    const f = parsePrometheus(text);
    expect(f.get('app:hits_total')?.type).toBe('counter');
    expect(sampleValue(f, 'app:hits_total', { code: '200' })).toBe(3);
    expect(sampleValue(f, 'app_temp')).toBe(-1.5);
  });

  it('escapes backslash, double quote and line feed in label values, and they parse back', () => {
    expect(escapeLabelValue('a\\b"c\nd')).toBe('a\\\\b\\"c\\nd');
    const r = new Registry();
    const c = r.counter({ name: 'x_total', help: 'x', labelNames: ['v'] });
    const nasty = ['plain', 'quote " inside', 'back\\slash', 'line\nfeed', '\\"\\n', 'unicode ☃ {},=', ''];
    for (const v of nasty) c.inc({ v });
    const f = parsePrometheus(r.render());
    for (const v of nasty) expect(sampleValue(f, 'x_total', { v })).toBe(1);
  });

  it('formats special values', () => {
    expect(formatValue(Number.POSITIVE_INFINITY)).toBe('+Inf');
    expect(formatValue(Number.NEGATIVE_INFINITY)).toBe('-Inf');
    expect(formatValue(Number.NaN)).toBe('NaN');
    expect(formatValue(1e-7)).toBe('1e-7');
    const r = new Registry();
    r.gauge({ name: 'g', help: 'g', labelNames: ['k'] }).set({ k: 'a' }, Number.NaN);
    expect(Number.isNaN(sampleValue(parsePrometheus(r.render()), 'g', { k: 'a' }))).toBe(true);
  });

  it('counts histogram observations into cumulative buckets with sum and count', () => {
    const r = new Registry();
    const h = r.histogram({ name: 'lat_seconds', help: 'Latency.', labelNames: ['path'], buckets: [0.1, 0.5, 1] });
    // 0.1 lands in le="0.1" (bounds are inclusive); 7 only in +Inf.
    for (const v of [0.05, 0.1, 0.3, 0.5, 0.9, 7]) h.observe({ path: 'local' }, v);
    h.observe({ path: 'mesh' }, 0.2);
    const text = r.render();
    expect(text).toContain('lat_seconds_bucket{path="local",le="0.1"} 2\n');
    expect(text).toContain('lat_seconds_bucket{path="local",le="0.5"} 4\n');
    expect(text).toContain('lat_seconds_bucket{path="local",le="1"} 5\n');
    expect(text).toContain('lat_seconds_bucket{path="local",le="+Inf"} 6\n');
    expect(text).toContain('lat_seconds_count{path="local"} 6\n');
    const f = parsePrometheus(text);
    expect(sampleValue(f, 'lat_seconds_sum', { path: 'local' })).toBeCloseTo(8.85, 12);
    expect(sampleValue(f, 'lat_seconds_count', { path: 'mesh' })).toBe(1);
    expect(sampleValue(f, 'lat_seconds_bucket', { path: 'mesh', le: '0.1' })).toBe(0);
    expect(h.snapshot({ path: 'local' }).count).toBe(6);
  });

  it('rejects bad names, wrong label sets, decreasing counters and unsorted buckets', () => {
    const r = new Registry();
    expect(() => r.counter({ name: '1bad', help: '' })).toThrow(RangeError);
    expect(() => r.counter({ name: 'ok_total', help: '', labelNames: ['__reserved'] })).toThrow(RangeError);
    const c = r.counter({ name: 'c_total', help: 'c', labelNames: ['a'] });
    expect(() => c.inc({})).toThrow(/takes labels \{a\}/);
    expect(() => c.inc({ a: 'x', b: 'y' })).toThrow(RangeError);
    expect(() => c.inc({ a: 'x' }, -1)).toThrow(/only goes up/);
    expect(() => r.counter({ name: 'c_total', help: 'again' })).toThrow(/twice/);
    expect(() => r.histogram({ name: 'h', help: '', buckets: [1, 1] })).toThrow(/strictly/);
    expect(() => r.histogram({ name: 'h2', help: '', labelNames: ['le'], buckets: [1] })).toThrow(/reserved/);
  });
});

describe('the strict parser used by these tests', () => {
  it('rejects malformed lines', () => {
    const bad = [
      'x 1\n', // undeclared
      '# TYPE x counter\nx{a="b} 1\n', // unterminated
      '# TYPE x counter\nx{a="\\t"} 1\n', // bad escape
      '# TYPE x counter\nx one\n', // bad value
      '# TYPE x counter\nx 1', // no final newline
      '# TYPE x counter\nx -1\n', // negative counter
      '# TYPE x histogram\nx_bucket{le="1"} 2\nx_bucket{le="+Inf"} 1\nx_sum 1\nx_count 1\n', // not cumulative
      '# TYPE x histogram\nx_bucket{le="1"} 1\nx_sum 1\nx_count 1\n', // no +Inf
    ];
    for (const t of bad) expect(() => parsePrometheus(t), t).toThrow();
  });
});

describe('ServingMetrics: the vlmesh: metric set', () => {
  it('records requests, errors and live gauges under vLLM-style names', () => {
    let stats = { running: 1, waiting: 2, kvUsage: 0.25 };
    let gpu = 1 << 20;
    const m = new ServingMetrics({ engineStats: () => stats, gpuMemoryBytes: () => gpu });
    m.recordRequest({ path: 'local', finishReason: 'stop', promptTokens: 10, completionTokens: 5, ttft: 0.2, e2e: 1.2 });
    m.recordRequest({ path: 'local', finishReason: 'length', promptTokens: 7, completionTokens: 1, ttft: 0.3, e2e: 0.4 });
    m.recordError('local', 400, 'invalid_json');
    m.recordError('local', 400, 'invalid_json');
    let f = parsePrometheus(m.render());
    const local = { path: 'local' };
    expect(sampleValue(f, 'vlmesh:time_to_first_token_seconds_count', local)).toBe(2);
    expect(sampleValue(f, 'vlmesh:time_to_first_token_seconds_sum', local)).toBeCloseTo(0.5, 12);
    expect(sampleValue(f, 'vlmesh:e2e_request_latency_seconds_count', local)).toBe(2);
    expect(sampleValue(f, 'vlmesh:request_prompt_tokens_sum', local)).toBe(17);
    expect(sampleValue(f, 'vlmesh:request_generation_tokens_sum', local)).toBe(6);
    expect(sampleValue(f, 'vlmesh:prompt_tokens_total', local)).toBe(17);
    expect(sampleValue(f, 'vlmesh:generation_tokens_total', local)).toBe(6);
    expect(sampleValue(f, 'vlmesh:request_success_total', { path: 'local', finished_reason: 'stop' })).toBe(1);
    expect(sampleValue(f, 'vlmesh:request_success_total', { path: 'local', finished_reason: 'length' })).toBe(1);
    expect(sampleValue(f, 'vlmesh:request_errors_total', { path: 'local', status: '400', code: 'invalid_json' })).toBe(2);
    // Decode speed: (5 - 1) tokens over (1.2 - 0.2) s; the 1-token request has none.
    expect(sampleValue(f, 'vlmesh:tokens_per_second_count', local)).toBe(1);
    expect(sampleValue(f, 'vlmesh:tokens_per_second_sum', local)).toBeCloseTo(4, 12);
    expect(sampleValue(f, 'vlmesh:num_requests_running')).toBe(1);
    expect(sampleValue(f, 'vlmesh:num_requests_waiting')).toBe(2);
    expect(sampleValue(f, 'vlmesh:kv_cache_usage_perc')).toBe(0.25);
    expect(sampleValue(f, 'vlmesh:gpu_memory_bytes')).toBe(1 << 20);
    expect(sampleValue(f, 'vlmesh:vision_cache_hits_total')).toBe(0);
    // Gauges follow the live state at each scrape.
    stats = { running: 0, waiting: 0, kvUsage: 0 };
    gpu = 0;
    f = parsePrometheus(m.render());
    expect(sampleValue(f, 'vlmesh:num_requests_running')).toBe(0);
    expect(sampleValue(f, 'vlmesh:gpu_memory_bytes')).toBe(0);
  });

  it('shows every family (with zeroed token counters) before the first request', () => {
    const f = parsePrometheus(new ServingMetrics().render());
    for (const name of [
      'vlmesh:time_to_first_token_seconds',
      'vlmesh:e2e_request_latency_seconds',
      'vlmesh:request_prompt_tokens',
      'vlmesh:request_generation_tokens',
      'vlmesh:tokens_per_second',
      'vlmesh:request_success_total',
      'vlmesh:request_errors_total',
      'vlmesh:num_requests_running',
      'vlmesh:num_requests_waiting',
      'vlmesh:kv_cache_usage_perc',
      'vlmesh:gpu_memory_bytes',
    ]) {
      expect(f.has(name), name).toBe(true);
    }
    expect(sampleValue(f, 'vlmesh:generation_tokens_total', { path: 'local' })).toBe(0);
    expect(sampleValue(f, 'vlmesh:num_requests_running')).toBe(0);
  });
});

describe('the Grafana dashboard', () => {
  it('queries only metrics the server exposes', async () => {
    const { readFileSync } = await import('node:fs');
    const dashboard = readFileSync(new URL('../../deploy/grafana/vlmesh-dashboard.json', import.meta.url), 'utf8');
    const used = new Set([...dashboard.matchAll(/vlmesh:[a-z0-9_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, '')));
    const exposed = new Set(parsePrometheus(new ServingMetrics({ fallbackHealthy: () => true }).render()).keys());
    expect(used.size).toBeGreaterThan(15);
    for (const name of used) expect(exposed, name).toContain(name);
  });

  it('exposes the engine counters as monotonic counters', () => {
    let hits = 3;
    const counters = { prefixQueriedTokens: 64, prefixHitTokens: 32, visionCacheHits: hits, visionCacheMisses: 1, visionImagesEncoded: 1, visionPasses: 1, preemptions: 0, decodeSteps: 5, decodeRows: 9 };
    const m = new ServingMetrics({ engineStats: () => ({ running: 0, waiting: 0, kvUsage: 0, counters: { ...counters, visionCacheHits: hits } }) });
    const read = () => parsePrometheus(m.render());
    expect(sampleValue(read(), 'vlmesh:prefix_cache_hits_total')).toBe(32);
    expect(sampleValue(read(), 'vlmesh:vision_cache_hits_total')).toBe(3);
    expect(read().get('vlmesh:decode_steps_total')?.type).toBe('counter');
    hits = 1; // a restarted source never makes the counter go down
    expect(sampleValue(read(), 'vlmesh:vision_cache_hits_total')).toBe(3);
    hits = 7;
    expect(sampleValue(read(), 'vlmesh:vision_cache_hits_total')).toBe(7);
  });
});
