/**
 * A Server-Sent Events parser (the WHATWG `text/event-stream` format) for `fetch` bodies, which
 * arrive in chunks that cut lines, and even UTF-8 characters, anywhere:
 *
 *   bytes ─► TextDecoder(stream) ─► buffer ─► complete lines (\n, \r\n or \r) ─► fields ─► events
 *                                     ▲ keeps the unfinished line (and a trailing \r, which may be
 *                                       the first half of \r\n) for the next chunk
 *
 * A blank line dispatches the event gathered so far; `data:` lines join with "\n"; lines starting
 * with ":" are comments; one space after the colon is dropped. An event cut off by the end of the
 * stream is discarded, as the specification says.
 */

/** One dispatched event. */
export interface SseEvent {
  /** The `event:` field, 'message' when absent. */
  event: string;
  /** The `data:` lines joined with "\n". */
  data: string;
  /** The last `id:` seen (persists across events), '' when none. */
  id: string;
  /** A `retry:` value in ms, when this event carried one. */
  retry?: number;
}

/**
 * Incremental parser: feed chunks with `push`, get the events they complete.
 *
 * @example
 * const p = new SseParser();
 * p.push('data: {"a"'); // []
 * p.push(':1}\n\n');    // [{ event: 'message', data: '{"a":1}', id: '' }]
 */
export class SseParser {
  private readonly decoder = new TextDecoder('utf-8');
  private buffer = '';
  private data: string[] = [];
  private hasData = false;
  private eventType = '';
  private lastId = '';
  private retry: number | undefined;
  private firstChunk = true;

  /** Parses one chunk (bytes or already-decoded text) and returns the events it completes. */
  push(chunk: Uint8Array | string): SseEvent[] {
    let text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    if (this.firstChunk && text.length > 0) {
      this.firstChunk = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    this.buffer += text;
    return this.drain(false);
  }

  /** Ends the stream: processes a final line without terminator; an unterminated event is dropped. */
  end(): SseEvent[] {
    this.buffer += this.decoder.decode();
    const events = this.drain(true);
    this.resetEvent();
    return events;
  }

  private drain(final: boolean): SseEvent[] {
    const events: SseEvent[] = [];
    let start = 0;
    const buf = this.buffer;
    for (let i = 0; i < buf.length; i++) {
      const ch = buf.charCodeAt(i);
      if (ch !== 0x0a && ch !== 0x0d) continue;
      if (ch === 0x0d && i === buf.length - 1 && !final) break; // may be \r\n split across chunks
      const line = buf.slice(start, i);
      if (ch === 0x0d && buf.charCodeAt(i + 1) === 0x0a) i++;
      start = i + 1;
      const ev = this.line(line);
      if (ev) events.push(ev);
    }
    this.buffer = buf.slice(start);
    if (final && this.buffer !== '') {
      // A last line without terminator still sets fields, but cannot dispatch.
      this.line(this.buffer);
      this.buffer = '';
    }
    return events;
  }

  private line(line: string): SseEvent | null {
    if (line === '') return this.dispatch();
    if (line.startsWith(':')) return null;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'data':
        this.data.push(value);
        this.hasData = true;
        break;
      case 'event':
        this.eventType = value;
        break;
      case 'id':
        if (!value.includes('\0')) this.lastId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
      default:
        break;
    }
    return null;
  }

  private dispatch(): SseEvent | null {
    if (!this.hasData) {
      this.resetEvent();
      return null;
    }
    const ev: SseEvent = { event: this.eventType || 'message', data: this.data.join('\n'), id: this.lastId };
    if (this.retry !== undefined) ev.retry = this.retry;
    this.resetEvent();
    return ev;
  }

  private resetEvent(): void {
    this.data = [];
    this.hasData = false;
    this.eventType = '';
    this.retry = undefined;
  }
}

/**
 * Reads a `text/event-stream` body to its end, yielding events as they complete. Cancelling the
 * iteration (break / return) cancels the body.
 *
 * @example
 * for await (const ev of readSse(response.body!)) if (ev.data !== '[DONE]') handle(JSON.parse(ev.data));
 */
export async function* readSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const parser = new SseParser();
  const reader = body.getReader();
  let finished = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      yield* parser.push(value);
    }
    finished = true;
    yield* parser.end();
  } finally {
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}
