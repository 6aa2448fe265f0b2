/**
 * The mesh in `/metrics`: a coordinator's hops (`MeshCoordinator.hops()`) become
 * `vlmesh:mesh_peers{state}`, `vlmesh:mesh_hop_bytes_total{peer,direction}`,
 * `vlmesh:mesh_hop_forwards_total{peer}`, `vlmesh:mesh_hop_latency_seconds{peer}` and
 * `vlmesh:mesh_hop_decode_bytes_per_token{peer}`, read at scrape time; mesh-served requests are
 * counted under `path="mesh"`; a node without a mesh has none of them. A mesh coordinator that
 * cannot serve is a fallback-eligible outcome (`mesh_unavailable`).
 */
import { describe, expect, it } from 'vitest';
import { fallbackReasonFor } from '../../edge-node/server/fallback.ts';
import { ApiError, ApiErrorType } from '../../shared/api/errors.ts';
import { type MeshHopSample, ServingMetrics } from '../../shared/engine/metrics.ts';
import { parsePrometheus, sampleValue } from '../support/prometheus-parse.ts';

const hop = (peer: string, state: MeshHopSample['state'], n: number): MeshHopSample => ({
  peer,
  state,
  bytesSent: 1000 * n,
  bytesReceived: 900 * n,
  forwards: 10 * n,
  meanRttMs: 2.5 * n,
  decodeBytesPerToken: 116,
});

describe('mesh metrics', () => {
  it('renders peers by state and per-hop bytes, forwards, latency and bytes per token, live at each scrape', () => {
    let hops = [hop('node-a', 'active', 1), hop('tab-1', 'active', 2)];
    const m = new ServingMetrics({ meshHops: () => hops });
    let p = parsePrometheus(m.render());
    expect(sampleValue(p, 'vlmesh:mesh_peers', { state: 'active' })).toBe(2);
    expect(sampleValue(p, 'vlmesh:mesh_peers', { state: 'lost' })).toBe(0);
    expect(sampleValue(p, 'vlmesh:mesh_hop_bytes_total', { peer: 'tab-1', direction: 'sent' })).toBe(2000);
    expect(sampleValue(p, 'vlmesh:mesh_hop_bytes_total', { peer: 'tab-1', direction: 'received' })).toBe(1800);
    expect(sampleValue(p, 'vlmesh:mesh_hop_forwards_total', { peer: 'node-a' })).toBe(10);
    expect(sampleValue(p, 'vlmesh:mesh_hop_latency_seconds', { peer: 'tab-1' })).toBeCloseTo(0.005, 9);
    expect(sampleValue(p, 'vlmesh:mesh_hop_decode_bytes_per_token', { peer: 'node-a' })).toBe(116);
    expect(p.get('vlmesh:mesh_hop_bytes_total')?.type).toBe('counter');
    // A peer is lost: the gauge moves, its counters keep their totals.
    hops = [hop('node-a', 'active', 3), { ...hop('tab-1', 'lost', 2) }];
    p = parsePrometheus(m.render());
    expect(sampleValue(p, 'vlmesh:mesh_peers', { state: 'active' })).toBe(1);
    expect(sampleValue(p, 'vlmesh:mesh_peers', { state: 'lost' })).toBe(1);
    expect(sampleValue(p, 'vlmesh:mesh_hop_bytes_total', { peer: 'node-a', direction: 'sent' })).toBe(3000);
    expect(sampleValue(p, 'vlmesh:mesh_hop_bytes_total', { peer: 'tab-1', direction: 'sent' })).toBe(2000);
  });

  it('counts requests under path="mesh"; a node without a mesh has no mesh metrics', () => {
    const m = new ServingMetrics({ meshHops: () => [] });
    m.recordRequest({ path: 'mesh', finishReason: 'length', promptTokens: 30, completionTokens: 8, ttft: 0.1, e2e: 0.5 });
    const p = parsePrometheus(m.render());
    expect(sampleValue(p, 'vlmesh:request_success_total', { path: 'mesh', finished_reason: 'length' })).toBe(1);
    expect(sampleValue(p, 'vlmesh:generation_tokens_total', { path: 'mesh' })).toBe(8);
    const plain = parsePrometheus(new ServingMetrics().render());
    expect(plain.has('vlmesh:mesh_peers')).toBe(false);
    expect(sampleValue(plain, 'vlmesh:generation_tokens_total', { path: 'local' })).toBe(0);
  });

  it('a mesh that cannot serve may go to the fallback', () => {
    expect(fallbackReasonFor(new ApiError(503, ApiErrorType.Unavailable, 'mesh_unavailable', 'no peers'))).toBe('mesh_unavailable');
  });
});
