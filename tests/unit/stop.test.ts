import { describe, expect, it } from 'vitest';
import { DeltaStream, StopMatcher, StopStringError } from '../../shared/engine/stop.ts';
import { Rng } from '../support/random.ts';

/** Feeds the deltas; returns everything emitted, the stop string seen, and the emitted text after each push. */
function run(stops: string[], deltas: string[]): { text: string; stop?: string; steps: string[] } {
  const m = new StopMatcher(stops);
  let text = '';
  const steps: string[] = [];
  for (const d of deltas) {
    const r = m.push(d);
    text += r.text;
    steps.push(text);
    if (r.stop !== undefined) return { text, stop: r.stop, steps };
  }
  return { text: text + m.flush(), steps };
}

/** What the whole text should give: cut at the earliest stop string (shorter wins a tie: it completes first). */
function expected(stops: string[], full: string): { text: string; stop?: string } {
  let at = -1;
  let hit: string | undefined;
  for (const s of stops) {
    const i = full.indexOf(s);
    if (i >= 0 && (at < 0 || i < at || (i === at && s.length < (hit as string).length))) {
      at = i;
      hit = s;
    }
  }
  return hit === undefined ? { text: full } : { text: full.slice(0, at), stop: hit };
}

describe('StopMatcher', () => {
  it('passes text through when no stop string is near', () => {
    expect(run(['STOP'], ['Hello', ', wor', 'ld'])).toEqual({ text: 'Hello, world', steps: ['Hello', 'Hello, wor', 'Hello, world'] });
  });

  it('stops inside one delta and drops the rest', () => {
    const r = run(['STOP'], ['abc', 'deSTOPfg', 'never']);
    expect(r.text).toBe('abcde');
    expect(r.stop).toBe('STOP');
  });

  it('catches a stop string spanning several deltas and never emits part of it', () => {
    const r = run(['</answer>'], ['The answer is 4', '</', 'ans', 'w', 'er', '>', 'tail']);
    expect(r.text).toBe('The answer is 4');
    expect(r.stop).toBe('</answer>');
    expect(r.steps).toEqual(Array(6).fill('The answer is 4'));
  });

  it('releases a held prefix once it can no longer become a stop string', () => {
    const m = new StopMatcher(['</answer>']);
    expect(m.push('x</ans').text).toBe('x');
    expect(m.pending).toBe('</ans');
    expect(m.push('ch').text).toBe('</ansch');
    expect(m.push('</').text).toBe('');
    expect(m.flush()).toBe('</');
  });

  it('handles several stop strings: the earliest wins, the shorter on a tie', () => {
    expect(run(['world', 'lo'], ['hello', ' world'])).toMatchObject({ text: 'hel', stop: 'lo' });
    expect(run(['abc', 'ab'], ['xa', 'bcd'])).toMatchObject({ text: 'x', stop: 'ab' });
    expect(run(['\n\n', 'END'], ['one\n', 'two E', 'N', 'D'])).toMatchObject({ text: 'one\ntwo ', stop: 'END' });
  });

  it('handles overlapping prefixes (the stop string starts inside a false start)', () => {
    // "aab" after "aa": the held "aa" is not a start of "aab" once "aaa" arrives, but its tail is.
    expect(run(['aab'], ['a', 'a', 'a', 'a', 'b', 'c'])).toMatchObject({ text: 'aa', stop: 'aab' });
    expect(run(['abab'], ['xab', 'a', 'c', 'aba', 'b'])).toMatchObject({ text: 'xabac', stop: 'abab' });
    // one stop string is a prefix of another: the shorter one completes first.
    expect(run(['<|im', '<|im_end|>'], ['x<', '|i', 'm_end|>'])).toMatchObject({ text: 'x', stop: '<|im' });
  });

  it('handles unicode: CJK, emoji (surrogate pairs), combining marks', () => {
    expect(run(['。'], ['你好', '世界。', '再见'])).toMatchObject({ text: '你好世界', stop: '。' });
    const emoji = run(['🙂🙂'], ['a🙂', 'b🙂', '🙂c']);
    expect(emoji).toMatchObject({ text: 'a🙂b', stop: '🙂🙂' });
    // the held tail is a whole code point, never half a pair
    const m = new StopMatcher(['🙂!']);
    expect(m.push('x🙂').text).toBe('x');
    expect(m.pending).toBe('🙂');
    expect(m.push('?').text).toBe('🙂?');
    expect(run(['é'], ['cafe\u0301'])).toMatchObject({ text: 'cafe\u0301' }); // NFD is not NFC: no match
    expect(run(['e\u0301'], ['caf', 'e', '\u0301s'])).toMatchObject({ text: 'caf', stop: 'e\u0301' });
  });

  it('handles empty deltas, no stop strings, and a flush after stopping', () => {
    expect(run([], ['a', '', 'b'])).toEqual({ text: 'ab', steps: ['a', 'a', 'ab'] });
    const m = new StopMatcher(['x']);
    expect(m.push('')).toEqual({ text: '' });
    expect(m.push('axb')).toEqual({ text: 'a', stop: 'x' });
    expect(m.stopped).toBe(true);
    expect(() => m.push('more')).toThrow(StopStringError);
    expect(m.flush()).toBe('');
    expect(m.push('y').text).toBe('y'); // reusable after flush
  });

  it('rejects empty stop strings', () => {
    expect(() => new StopMatcher(['ok', ''])).toThrow(StopStringError);
  });

  it('agrees with cutting the whole text, for random texts, stops and splits', () => {
    const rng = new Rng(99);
    const alphabet = ['a', 'b', 'c', '🙂', '好', '\n'];
    const word = (n: number) => Array.from({ length: n }, () => rng.pick(alphabet)).join('');
    for (let trial = 0; trial < 500; trial++) {
      const stops = Array.from({ length: rng.int(1, 3) }, () => word(rng.int(1, 4)));
      const full = word(rng.int(0, 30));
      // split at code point boundaries, as the decoder does
      const cps = [...full];
      const deltas: string[] = [];
      for (let i = 0; i < cps.length; ) {
        const n = rng.int(0, 4);
        deltas.push(cps.slice(i, i + n).join(''));
        i += n;
      }
      const want = expected(stops, full);
      const got = run(stops, deltas);
      expect({ text: got.text, stop: got.stop }, JSON.stringify({ stops, deltas })).toEqual(want);
      // what was shown at each step was never retracted
      for (const s of got.steps) expect(want.text.startsWith(s)).toBe(true);
    }
  });
});

describe('DeltaStream', () => {
  /** A decoder whose token i is the string pieces[i]; the last piece only comes out at flush (pending bytes). */
  const decoder = (pieces: string[], tail = '') => ({ push: (id: number) => pieces[id], flush: () => tail });

  it('carries every id on the next delta with text, holds a stop string back, and ends with the held tail', () => {
    const ds = new DeltaStream(decoder(['He', '', 'llo', ' <', 'x']), ['</s>']);
    const a = ds.push(0);
    expect(a).toEqual({ delta: { text: 'He', tokenIds: [0] }, stopped: false });
    expect(ds.push(1)).toEqual({ delta: null, stopped: false }); // no text yet: the id waits
    expect(ds.push(2)).toEqual({ delta: { text: 'llo', tokenIds: [1, 2] }, stopped: false });
    expect(ds.push(3)).toEqual({ delta: { text: ' ', tokenIds: [3] }, stopped: false }); // '<' may start '</s>'
    expect(ds.push(4)).toEqual({ delta: { text: '<x', tokenIds: [4] }, stopped: false });
    expect(ds.end(false)).toEqual({ delta: null, stopped: false });
  });

  it('stops on a stop string split across tokens (unshown), and the last delta carries only the ids', () => {
    const ds = new DeltaStream(decoder(['ok </', 's>', 'more']), ['</s>']);
    expect(ds.push(0)).toEqual({ delta: { text: 'ok ', tokenIds: [0] }, stopped: false });
    expect(ds.push(1)).toEqual({ delta: null, stopped: true });
    expect(ds.end(false)).toEqual({ delta: { text: '', tokenIds: [1] }, stopped: false });
  });

  it('pending decoder bytes can complete a stop string at the end; an abort shows nothing more', () => {
    const ends = new DeltaStream(decoder(['a<'], '/s>'), ['</s>']);
    expect(ends.push(0)).toEqual({ delta: { text: 'a', tokenIds: [0] }, stopped: false });
    expect(ends.end(false)).toEqual({ delta: null, stopped: true });
    const aborted = new DeltaStream(decoder(['a<'], 'b'), ['</s>']);
    aborted.push(0);
    expect(aborted.end(true)).toEqual({ delta: null, stopped: false }); // the held '<' is dropped with the stream
    const tail = new DeltaStream(decoder(['a<'], 'b'), ['</s>']);
    tail.push(0);
    expect(tail.end(false)).toEqual({ delta: { text: '<b', tokenIds: [] }, stopped: false });
  });
});
