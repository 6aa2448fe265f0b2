/**
 * A Hugging Face `tokenizer.json` tokenizer for byte-level BPE models (GPT-2 / Qwen family), written
 * to give the same ids and strings as the Rust `tokenizers` library.
 *
 * encode(text):
 *
 *   text ──split on added tokens (normalized:false)──► pieces ──normalizer (NFC)──► pieces
 *        ──split on added tokens (normalized:true)──► pieces ──pre-tokenizer──► words ──BPE──► ids
 *
 *   "hi<|im_end|>\n" → ["hi"] [<|im_end|>] ["\n"] → "hi", "Ċ" → [6023] [151645] [198]
 *
 * Added tokens are matched leftmost-longest before anything else, so a special token typed in user
 * text becomes the control token (as in the official tokenizer; `splitSpecialTokens` turns that off
 * for `special` tokens). The pre-tokenizer regex comes from the JSON and is translated from
 * Oniguruma to JavaScript (see onig-regex.ts).
 *
 * decode(ids): model tokens map back to bytes (byte-level decoder) and are decoded as UTF-8 with
 * U+FFFD for invalid sequences; an added token flushes the pending bytes and is appended as text.
 */
import { BpeModel, type BpeModelJson } from './bpe.ts';
import { bytesToUnicode, pushTokenBytes } from './byte-level.ts';
import { TokenizerConfigError } from './errors.ts';
import { translateOnigRegex } from './onig-regex.ts';

/** One entry of `added_tokens` in tokenizer.json. */
export interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  lstrip: boolean;
  rstrip: boolean;
  single_word: boolean;
  normalized: boolean;
}

/** The parts of tokenizer.json this implementation reads. */
export interface TokenizerJson {
  added_tokens?: Partial<AddedToken>[];
  normalizer?: unknown;
  pre_tokenizer?: unknown;
  post_processor?: unknown;
  decoder?: unknown;
  model: BpeModelJson;
}

export interface EncodeOptions {
  /** Apply the post-processor's special tokens (BOS/EOS templates). Default true; Qwen adds none. */
  addSpecialTokens?: boolean;
  /**
   * Tokenize `special` added tokens typed in the text as plain text (non-special added tokens such
   * as `<think>` are still matched), like `split_special_tokens=True`. Default false.
   */
  splitSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop added tokens flagged `special` (e.g. `<|im_end|>`; `<think>` is not special). */
  skipSpecialTokens?: boolean;
}

type Normalize = (s: string) => string;
/** Splits each piece into sub-pieces. */
type PreTokenize = (pieces: string[]) => string[];
type PostProcess = (ids: number[]) => number[];

/** Characters of a Rust-regex `\w` (used by the added tokens' single_word flag). */
const WORD_CHAR = /[\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]/u;
const WHITE_SPACE = /\p{White_Space}/u;
const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

function fail(what: string): never {
  throw new TokenizerConfigError(what);
}

function asRecord(x: unknown, where: string): Record<string, unknown> {
  if (typeof x !== 'object' || x === null) fail(`${where}: expected an object`);
  return x as Record<string, unknown>;
}

function buildNormalizer(json: unknown): Normalize | null {
  if (json == null) return null;
  const n = asRecord(json, 'normalizer');
  switch (n.type) {
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD': {
      const form = n.type;
      return (s) => s.normalize(form);
    }
    case 'Lowercase':
      return (s) => s.toLowerCase();
    case 'Sequence': {
      const steps = (n.normalizers as unknown[]).map(buildNormalizer).filter((f): f is Normalize => f !== null);
      return (s) => steps.reduce((acc, f) => f(acc), s);
    }
    default:
      return fail(`normalizer type ${String(n.type)} is not supported`);
  }
}

type SplitBehavior = 'Removed' | 'Isolated' | 'MergedWithPrevious' | 'MergedWithNext' | 'Contiguous';

/** One span of a piece: [start, end) in UTF-16 units, and whether the pattern matched it. */
type Span = [number, number, boolean];

function regexSpans(re: RegExp, s: string): Span[] {
  const spans: Span[] = [];
  let prev = 0;
  re.lastIndex = 0;
  for (let m = re.exec(s); m !== null; m = re.exec(s)) {
    const start = m.index;
    const end = start + m[0].length;
    if (end === start) {
      // Empty match: step over one code point so the search moves on.
      re.lastIndex = end + ((s.codePointAt(end) ?? 0) > 0xffff ? 2 : 1);
      continue;
    }
    if (prev !== start) spans.push([prev, start, false]);
    spans.push([start, end, true]);
    prev = end;
  }
  if (prev !== s.length) spans.push([prev, s.length, false]);
  return spans;
}

/** Groups spans into pieces the way `tokenizers`' SplitDelimiterBehavior does. */
function applyBehavior(s: string, spans: Span[], behavior: SplitBehavior): string[] {
  const out: [number, number][] = [];
  switch (behavior) {
    case 'Isolated':
      for (const [a, b] of spans) out.push([a, b]);
      break;
    case 'Removed':
      for (const [a, b, m] of spans) if (!m) out.push([a, b]);
      break;
    case 'MergedWithPrevious': {
      let prevMatch = false;
      for (const [a, b, m] of spans) {
        if (m && !prevMatch && out.length > 0) out[out.length - 1][1] = b;
        else out.push([a, b]);
        prevMatch = m;
      }
      break;
    }
    case 'MergedWithNext': {
      let prevMatch = false;
      const rev: [number, number][] = [];
      for (let i = spans.length - 1; i >= 0; i--) {
        const [a, b, m] = spans[i];
        if (m && !prevMatch && rev.length > 0) rev[rev.length - 1][0] = a;
        else rev.push([a, b]);
        prevMatch = m;
      }
      out.push(...rev.reverse());
      break;
    }
    case 'Contiguous': {
      let prevMatch = false;
      for (const [a, b, m] of spans) {
        if (m && prevMatch && out.length > 0) out[out.length - 1][1] = b;
        else out.push([a, b]);
        prevMatch = m;
      }
      break;
    }
  }
  return out.filter(([a, b]) => b > a).map(([a, b]) => s.slice(a, b));
}

function escapeRegExp(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}

function buildPreTokenizer(json: unknown): PreTokenize | null {
  if (json == null) return null;
  const p = asRecord(json, 'pre_tokenizer');
  switch (p.type) {
    case 'Sequence': {
      const steps = (p.pretokenizers as unknown[]).map(buildPreTokenizer).filter((f): f is PreTokenize => f !== null);
      return (pieces) => steps.reduce((acc, f) => f(acc), pieces);
    }
    case 'Split': {
      const pat = asRecord(p.pattern, 'Split.pattern');
      let source: string;
      if (typeof pat.Regex === 'string') source = translateOnigRegex(pat.Regex);
      else if (typeof pat.String === 'string') source = escapeRegExp(pat.String);
      else return fail('Split pattern must be {Regex} or {String}');
      const re = new RegExp(source, 'gu');
      const behavior = p.behavior as SplitBehavior;
      if (!['Removed', 'Isolated', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous'].includes(behavior)) {
        fail(`Split behavior ${String(behavior)} is not supported`);
      }
      const invert = p.invert === true;
      return (pieces) =>
        pieces.flatMap((s) => {
          let spans = regexSpans(re, s);
          if (invert) spans = spans.map(([a, b, m]) => [a, b, !m] as Span);
          return applyBehavior(s, spans, behavior);
        });
    }
    case 'ByteLevel': {
      const addPrefixSpace = p.add_prefix_space === true;
      const re = p.use_regex === false ? null : new RegExp(translateOnigRegex(GPT2_PATTERN), 'gu');
      return (pieces) =>
        pieces.flatMap((s) => {
          // As in `tokenizers`, the prefix space is added to every piece reaching this step.
          const t = addPrefixSpace && !s.startsWith(' ') ? ' ' + s : s;
          const words = re ? applyBehavior(t, regexSpans(re, t), 'Isolated') : [t];
          return words.map(bytesToUnicode);
        });
    }
    default:
      return fail(`pre_tokenizer type ${String(p.type)} is not supported`);
  }
}

function buildPostProcessor(json: unknown): PostProcess | null {
  if (json == null) return null;
  const p = asRecord(json, 'post_processor');
  switch (p.type) {
    case 'ByteLevel':
      return null; // offsets only
    case 'Sequence': {
      const steps = (p.processors as unknown[]).map(buildPostProcessor).filter((f): f is PostProcess => f !== null);
      return steps.length === 0 ? null : (ids) => steps.reduce((acc, f) => f(acc), ids);
    }
    case 'TemplateProcessing': {
      const special = asRecord(p.special_tokens ?? {}, 'special_tokens') as Record<string, { ids: number[] }>;
      const single = p.single as Record<string, { id: string }>[];
      return (ids) => {
        const out: number[] = [];
        for (const item of single) {
          if (item.Sequence) {
            if (item.Sequence.id !== 'A') fail('TemplateProcessing single template uses a second sequence');
            out.push(...ids);
          } else if (item.SpecialToken) {
            const tok = special[item.SpecialToken.id];
            if (!tok) fail(`TemplateProcessing: unknown special token ${item.SpecialToken.id}`);
            out.push(...tok.ids);
          }
        }
        return out;
      };
    }
    case 'RobertaProcessing':
    case 'BertProcessing': {
      const cls = (p.cls as [string, number])[1];
      const sep = (p.sep as [string, number])[1];
      return (ids) => [cls, ...ids, sep];
    }
    default:
      return fail(`post_processor type ${String(p.type)} is not supported`);
  }
}

/** Leftmost-longest matcher over a set of added tokens. */
class AddedTokenMatcher {
  /** First UTF-16 unit → candidate tokens, longest first. */
  private readonly byFirst = new Map<number, AddedToken[]>();

  constructor(tokens: AddedToken[]) {
    for (const t of tokens) {
      if (t.content.length === 0) continue;
      const k = t.content.charCodeAt(0);
      const list = this.byFirst.get(k) ?? [];
      list.push(t);
      this.byFirst.set(k, list);
    }
    for (const list of this.byFirst.values()) list.sort((a, b) => b.content.length - a.content.length);
  }

  get empty(): boolean {
    return this.byFirst.size === 0;
  }

  /** The longest token starting at the earliest position ≥ from, or null. */
  find(s: string, from: number): { token: AddedToken; start: number } | null {
    for (let i = from; i < s.length; i++) {
      const list = this.byFirst.get(s.charCodeAt(i));
      if (!list) continue;
      for (const t of list) if (s.startsWith(t.content, i)) return { token: t, start: i };
    }
    return null;
  }
}

/** A piece of input: text still to tokenize, or an added token already recognized. */
type Piece = string | AddedToken;

/** A byte-level BPE tokenizer built from a Hugging Face `tokenizer.json` object. */
export class Tokenizer {
  readonly addedTokens: readonly AddedToken[];
  private readonly model: BpeModel;
  private readonly normalizer: Normalize | null;
  private readonly preTokenizer: PreTokenize | null;
  private readonly postProcessor: PostProcess | null;
  private readonly addedById = new Map<number, AddedToken>();
  private readonly addedByContent = new Map<string, AddedToken>();
  private readonly rawMatcher: AddedTokenMatcher;
  private readonly normalizedMatcher: AddedTokenMatcher;
  /** One past the largest id the tokenizer knows (model vocabulary and added tokens). */
  readonly vocabSize: number;

  private constructor(json: TokenizerJson) {
    this.model = new BpeModel(json.model);
    this.normalizer = buildNormalizer(json.normalizer);
    this.preTokenizer = buildPreTokenizer(json.pre_tokenizer);
    this.postProcessor = buildPostProcessor(json.post_processor);
    const dec = asRecord(json.decoder, 'decoder');
    if (dec.type !== 'ByteLevel') fail(`decoder type ${String(dec.type)} is not supported (only ByteLevel)`);
    const added: AddedToken[] = (json.added_tokens ?? []).map((t) => {
      if (typeof t.id !== 'number' || typeof t.content !== 'string') fail('added token without id/content');
      return {
        id: t.id,
        content: t.content,
        special: t.special === true,
        lstrip: t.lstrip === true,
        rstrip: t.rstrip === true,
        single_word: t.single_word === true,
        // `tokenizers` defaults `normalized` to !special.
        normalized: t.normalized ?? t.special !== true,
      };
    });
    this.addedTokens = added;
    for (const t of added) {
      this.addedById.set(t.id, t);
      this.addedByContent.set(t.content, t);
    }
    this.rawMatcher = new AddedTokenMatcher(added.filter((t) => !t.normalized));
    this.normalizedMatcher = new AddedTokenMatcher(added.filter((t) => t.normalized));
    let max = this.model.vocabR.length;
    for (const t of added) max = Math.max(max, t.id + 1);
    this.vocabSize = max;
  }

  /**
   * Builds a tokenizer from the parsed contents of a `tokenizer.json`.
   *
   * @example
   * const tok = Tokenizer.fromJSON(JSON.parse(text));
   * tok.encode('Hello world'); // [9707, 1879]
   */
  static fromJSON(json: unknown): Tokenizer {
    const j = asRecord(json, 'tokenizer.json');
    if (!j.model) fail('tokenizer.json has no model');
    return new Tokenizer(j as unknown as TokenizerJson);
  }

  /** Token string of an id (added tokens first), or undefined for ids with no token. */
  idToToken(id: number): string | undefined {
    return this.addedById.get(id)?.content ?? this.model.vocabR[id];
  }

  /** Id of a token string (added tokens first), or undefined. */
  tokenToId(token: string): number | undefined {
    return this.addedByContent.get(token)?.id ?? this.model.vocab.get(token);
  }

  /** Whether `id` is an added token flagged special (what skipSpecialTokens drops). */
  isSpecialId(id: number): boolean {
    return this.addedById.get(id)?.special === true;
  }

  /** Token ids of `text`. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const skipSpecial = options.splitSpecialTokens === true;
    let pieces: Piece[] = this.splitAdded(text, this.rawMatcher, skipSpecial);
    pieces = pieces.flatMap((p) => {
      if (typeof p !== 'string') return [p];
      const n = this.normalizer ? this.normalizer(p) : p;
      return this.splitAdded(n, this.normalizedMatcher, skipSpecial);
    });
    const ids: number[] = [];
    for (const p of pieces) {
      if (typeof p !== 'string') {
        ids.push(p.id);
        continue;
      }
      const words = this.preTokenizer ? this.preTokenizer([p]) : [p];
      for (const w of words) for (const id of this.model.encodeWord(w)) ids.push(id);
    }
    if (options.addSpecialTokens !== false && this.postProcessor) return this.postProcessor(ids);
    return ids;
  }

  /** Token strings of `text` (the `tokens` of the official encoding). */
  tokenize(text: string, options: EncodeOptions = {}): string[] {
    return this.encode(text, options).map((id) => this.idToToken(id) ?? '');
  }

  /**
   * Text of `ids`. Ids with no token (the embedding's padding rows) decode to nothing; invalid
   * UTF-8 (a character cut between tokens) becomes U+FFFD.
   */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const d = new StreamingDecoder(this, options);
    let s = '';
    for (let i = 0; i < ids.length; i++) s += d.push(ids[i]);
    return s + d.flush();
  }

  /** A decoder that takes ids one at a time (for streaming generation). */
  streamingDecoder(options: DecodeOptions = {}): StreamingDecoder {
    return new StreamingDecoder(this, options);
  }

  /** @internal What one id contributes when decoding: bytes, text, or nothing. */
  decodePart(id: number, skipSpecial: boolean, bytes: number[]): string | null {
    const added = this.addedById.get(id);
    if (added) return skipSpecial && added.special ? '' : added.content;
    const tok = this.model.vocabR[id];
    if (tok === undefined) return '';
    pushTokenBytes(tok, bytes);
    return null;
  }

  /**
   * Splits `s` on the tokens of `matcher`, honouring each token's lstrip / rstrip / single_word,
   * exactly as `tokenizers`' AddedVocabulary::find_matches does.
   */
  private splitAdded(s: string, matcher: AddedTokenMatcher, skipSpecial: boolean): Piece[] {
    if (matcher.empty || s.length === 0) return s.length === 0 ? [] : [s];
    const out: Piece[] = [];
    let offset = 0; // end of the last emitted piece
    let from = 0; // where the search resumes
    for (let m = matcher.find(s, from); m !== null; m = matcher.find(s, from)) {
      const t = m.token;
      let start = m.start;
      let stop = start + t.content.length;
      from = stop;
      if (skipSpecial && t.special) continue;
      if (t.single_word) {
        const before = start === 0 || !WORD_CHAR.test(lastChar(s, start));
        const after = stop === s.length || !WORD_CHAR.test(firstChar(s, stop));
        if (!before || !after) continue;
      }
      if (t.lstrip) {
        let a = start;
        while (a > 0 && WHITE_SPACE.test(lastChar(s, a))) a -= lastChar(s, a).length;
        start = Math.max(a, offset);
      }
      if (t.rstrip) {
        while (stop < s.length && WHITE_SPACE.test(firstChar(s, stop))) stop += firstChar(s, stop).length;
        from = stop;
      }
      if (offset < start) out.push(s.slice(offset, start));
      out.push(t);
      offset = stop;
    }
    if (offset < s.length) out.push(s.slice(offset));
    return out;
  }
}

function lastChar(s: string, end: number): string {
  const c = s.charCodeAt(end - 1);
  return c >= 0xdc00 && c < 0xe000 && end >= 2 ? s.slice(end - 2, end) : s.slice(end - 1, end);
}

function firstChar(s: string, start: number): string {
  return String.fromCodePoint(s.codePointAt(start)!);
}

/**
 * Turns ids into text deltas as they arrive, never splitting a multi-byte UTF-8 character: bytes
 * of an incomplete character are held back until the character completes (or until an added
 * token or `flush()` shows it never will, which yields U+FFFD as in a one-shot decode). The
 * concatenation of all deltas and the final flush equals `tokenizer.decode(ids)`.
 *
 * @example
 * const d = tok.streamingDecoder({ skipSpecialTokens: true });
 * for (const id of ids) out += d.push(id);   // " 🤖": "", "", " 🤖"
 * out += d.flush();
 */
export class StreamingDecoder {
  private readonly utf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
  private readonly bytes: number[] = [];
  private readonly skipSpecial: boolean;

  constructor(
    private readonly tokenizer: Tokenizer,
    options: DecodeOptions = {},
  ) {
    this.skipSpecial = options.skipSpecialTokens === true;
  }

  /** Feeds one id; returns the text that is now complete. */
  push(id: number): string {
    const bytes = this.bytes;
    bytes.length = 0;
    const text = this.tokenizer.decodePart(id, this.skipSpecial, bytes);
    if (text === null) return this.utf8.decode(Uint8Array.from(bytes), { stream: true });
    // An added token ends the pending byte run; a skipped one (text '') leaves it open, as the
    // official decoder does.
    if (text === '') return '';
    return this.utf8.decode() + text;
  }

  /** Ends the stream: pending incomplete bytes come out as U+FFFD. The decoder can be reused. */
  flush(): string {
    return this.utf8.decode();
  }
}
