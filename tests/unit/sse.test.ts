import { describe, expect, it } from 'vitest';
import { readSse, type SseEvent, SseParser } from '../../web/src/sse.ts';

const enc = new TextEncoder();

/** Parses `bytes` delivered in the given chunk sizes (cycled). */
function parseIn(bytes: Uint8Array, sizes: number[]): SseEvent[] {
  const p = new SseParser();
  const out: SseEvent[] = [];
  let at = 0;
  let k = 0;
  while (at < bytes.length) {
    const n = sizes[k++ % sizes.length]!;
    out.push(...p.push(bytes.subarray(at, at + n)));
    at += n;
  }
  out.push(...p.end());
  return out;
}

const STREAM =
  '\ufeff: a comment line\n' +
  'data: {"a":"héllo 🌍"}\n\n' +
  'event: update\r\nid: 7\r\ndata: line one\r\ndata: line two\r\n\r\n' +
  'data:no-space\r\rdata:  two spaces\n\n' +
  'id: 8\nretry: 1500\ndata\n\n' +
  'event: ignored-without-data\n\n' +
  'unknown: field\ndata: [DONE]\n\n' +
  'data: cut off at the end';

const WANT: SseEvent[] = [
  { event: 'message', data: '{"a":"héllo 🌍"}', id: '' },
  { event: 'update', data: 'line one\nline two', id: '7' },
  { event: 'message', data: 'no-space', id: '7' },
  { event: 'message', data: ' two spaces', id: '7' },
  { event: 'message', data: '', id: '8', retry: 1500 },
  { event: 'message', data: '[DONE]', id: '8' },
];

describe('SseParser', () => {
  it('parses fields, comments, line endings, multi-line data; drops an unterminated last event', () => {
    expect(parseIn(enc.encode(STREAM), [1 << 20])).toEqual(WANT);
  });

  it('gives the same events however the bytes are chunked (cuts inside \\r\\n and inside UTF-8 characters)', () => {
    const bytes = enc.encode(STREAM);
    for (const sizes of [[1], [2], [3], [5, 1, 7], [13], [64]]) expect(parseIn(bytes, sizes), `chunks ${sizes}`).toEqual(WANT);
    // Every single cut point.
    for (let cut = 1; cut < bytes.length; cut++) {
      const p = new SseParser();
      const out = [...p.push(bytes.subarray(0, cut)), ...p.push(bytes.subarray(cut)), ...p.end()];
      expect(out, `cut at ${cut}`).toEqual(WANT);
    }
  });

  it('does not dispatch an event before its blank line arrives', () => {
    const p = new SseParser();
    expect(p.push('data: x\n')).toEqual([]);
    expect(p.push('\r')).toEqual([]); // a lone \r at a chunk end may be half of \r\n
    expect(p.push('\n')).toEqual([{ event: 'message', data: 'x', id: '' }]);
  });

  it('treats a final \\r as a line end when the stream ends', () => {
    const p = new SseParser();
    expect([...p.push('data: y\n\r'), ...p.end()]).toEqual([{ event: 'message', data: 'y', id: '' }]);
  });
});

describe('readSse', () => {
  it('reads a ReadableStream body to its end', async () => {
    const bytes = enc.encode(STREAM);
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < bytes.length; i += 4) c.enqueue(bytes.slice(i, i + 4));
        c.close();
      },
    });
    const got: SseEvent[] = [];
    for await (const ev of readSse(body)) got.push(ev);
    expect(got).toEqual(WANT);
  });

  it('cancels the body when the reader stops early', async () => {
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        c.enqueue(enc.encode('data: tick\n\n'));
      },
      cancel() {
        cancelled = true;
      },
    });
    let n = 0;
    for await (const ev of readSse(body)) {
      expect(ev.data).toBe('tick');
      if (++n === 3) break;
    }
    expect(cancelled).toBe(true);
  });
});
