/**
 * Stop strings over a stream of text deltas (what `StreamingDecoder.push` returns per token).
 *
 * `push(delta)` returns the text that is safe to show now. It holds back the longest tail of the
 * text that is still a proper prefix of some stop string, so a stop string split across deltas is
 * caught and never partially emitted; once a stop string appears, it returns the text before it
 * and reports which stop string matched. `flush()` returns the held tail at the end of a stream
 * that did not stop.
 *
 * When several stop strings occur, the earliest occurrence wins, so the emitted text never
 * contains any stop string. Of stop strings starting at the same place the shorter wins: it is
 * complete first, and the stream stops at once (the result does not depend on how the text was
 * split into deltas).
 *
 * Deltas from the decoder are well-formed UTF-16 (it never splits a code point), and a held tail
 * is a prefix of a well-formed stop string, so the emitted/held split never cuts a surrogate pair.
 *
 * @example
 * const m = new StopMatcher(['</answer>', '\n\n']);
 * for (const id of ids) {
 *   const r = m.push(decoder.push(id));
 *   show(r.text);
 *   if (r.stop !== undefined) break;
 * }
 * show(m.flush()); // when the stream ended without a stop string
 */
import { VlmeshError } from '../errors.ts';

/** A stop string was empty, or the matcher was used after it stopped. */
export class StopStringError extends VlmeshError {
  constructor(message: string) {
    super('STOP_STRING', message);
  }
}

export interface StopResult {
  /** Text to emit now (never contains, nor ends with the start of, a stop string it is unsure of). */
  text: string;
  /** The stop string that ended the stream, if one appeared. */
  stop?: string;
}

export class StopMatcher {
  private readonly stops: readonly string[];
  private held = '';
  private done = false;

  /** @param stops the stop strings; each must be non-empty (duplicates are harmless). */
  constructor(stops: readonly string[]) {
    for (const s of stops) {
      if (typeof s !== 'string' || s.length === 0) throw new StopStringError('stop strings must be non-empty strings');
    }
    this.stops = [...stops];
  }

  /** True once a stop string has been seen. */
  get stopped(): boolean {
    return this.done;
  }

  /** The text held back so far (a possible start of a stop string). */
  get pending(): string {
    return this.held;
  }

  /** Feeds one delta; see the class comment. */
  push(delta: string): StopResult {
    if (this.done) throw new StopStringError('push after a stop string was matched');
    const buf = this.held + delta;
    // The held tail holds no complete stop string, so any match ends inside `delta`; searching
    // all of `buf` is cheap (the tail is shorter than the longest stop string).
    let at = -1;
    let hit: string | undefined;
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (at < 0 || i < at || (i === at && s.length < (hit as string).length))) {
        at = i;
        hit = s;
      }
    }
    if (hit !== undefined) {
      this.done = true;
      this.held = '';
      return { text: buf.slice(0, at), stop: hit };
    }
    const keep = this.partialTail(buf);
    this.held = buf.slice(buf.length - keep);
    return { text: buf.slice(0, buf.length - keep) };
  }

  /** Ends the stream: returns the held tail (empty after a stop). The matcher can then be reused. */
  flush(): string {
    const t = this.done ? '' : this.held;
    this.held = '';
    this.done = false;
    return t;
  }

  /** Length of the longest suffix of `buf` that is a proper prefix of some stop string. */
  private partialTail(buf: string): number {
    let best = 0;
    for (const s of this.stops) {
      for (let L = Math.min(s.length - 1, buf.length); L > best; L--) {
        if (buf.endsWith(s.slice(0, L))) {
          best = L;
          break;
        }
      }
    }
    return best;
  }
}

/** What a `DeltaStream` step gives the engine. */
export interface DeltaStep {
  /** The event to stream now, if any text became safe to show (with every id since the last one). */
  delta: { text: string; tokenIds: number[] } | null;
  /** A stop string completed: the stream ends, the stop string unshown. */
  stopped: boolean;
}

/**
 * Sampled token ids → the `delta` events an engine streams: text decoded UTF-8-safely, stop
 * strings held back and never shown, and every id riding on the next delta that carries text
 * (or on the last one). Every Engine uses it, so a request streams the same events whichever
 * engine serves it.
 *
 * @example
 * const ds = new DeltaStream(tokenizer.streamingDecoder({ skipSpecialTokens: true }), stop);
 * const step = ds.push(id); if (step.delta) emit(step.delta); if (step.stopped) finish('stop');
 * const last = ds.end(aborted); if (last.delta) emit(last.delta);
 */
export class DeltaStream {
  private readonly matcher: StopMatcher;
  private pendingIds: number[] = [];
  private stoppedByString = false;

  /** @throws StopStringError for an empty stop string. */
  constructor(
    private readonly decoder: { push(id: number): string; flush(): string },
    stops: readonly string[],
  ) {
    this.matcher = new StopMatcher(stops);
  }

  /** Takes one sampled token. */
  push(id: number): DeltaStep {
    this.pendingIds.push(id);
    const r = this.matcher.push(this.decoder.push(id));
    let delta: DeltaStep['delta'] = null;
    if (r.text) {
      delta = { text: r.text, tokenIds: this.pendingIds };
      this.pendingIds = [];
    }
    if (r.stop !== undefined) this.stoppedByString = true;
    return { delta, stopped: r.stop !== undefined };
  }

  /**
   * Ends the stream. Unless it was aborted or a stop string ended it, the decoder's pending bytes
   * may still complete a stop string (`stopped`), else the held tail is shown; in every case the
   * ids not yet sent ride on this last delta.
   */
  end(aborted: boolean): DeltaStep {
    let text = '';
    let stopped = false;
    if (!aborted && !this.stoppedByString) {
      const r = this.matcher.push(this.decoder.flush());
      text = r.text;
      if (r.stop === undefined) text += this.matcher.flush();
      else stopped = true;
    }
    const delta = text || this.pendingIds.length ? { text, tokenIds: this.pendingIds } : null;
    this.pendingIds = [];
    return { delta, stopped };
  }
}
