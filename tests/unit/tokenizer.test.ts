/**
 * The tokenizer against the official Hugging Face tokenizer (golden/e2e/tokenizer_cases.json and the
 * rendered prompts of golden/e2e/case_*.json), the streaming decoder, the Oniguruma → JS regex
 * translation, and the added-token flags on a small synthetic tokenizer.json.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { TokenizerConfigError } from '../../shared/text/errors.ts';
import { caseVariants, translateOnigRegex } from '../../shared/text/onig-regex.ts';
import { Tokenizer, type TokenizerJson } from '../../shared/text/tokenizer.ts';
import { type GoldenCase, tensor } from '../support/golden.ts';

const golden = fileURLToPath(new URL('../fixtures/golden/', import.meta.url));

interface TokCase {
  name: string;
  text: string;
  ids: number[];
  tokens: (string | null)[];
  decoded: string;
  roundtrip_exact: boolean;
  roundtrip_equals_nfc_input: boolean;
  decoded_skip_special: string;
  per_token_decode: string[];
  ids_split_special_tokens?: number[];
}
interface DecodeCase {
  name: string;
  ids: number[];
  decoded: string;
  decoded_skip_special?: string;
  per_token_decode?: string[];
  tokens?: (string | null)[];
}

const tokCases = JSON.parse(readFileSync(`${golden}e2e/tokenizer_cases.json`, 'utf8')) as {
  vocab_size_with_added: number;
  cases: TokCase[];
  decode_cases: DecodeCase[];
};
const e2eFiles = readdirSync(`${golden}e2e`).filter((f) => /^case_.*\.json$/.test(f));
const e2eCases: [string, GoldenCase][] = e2eFiles.map((f) => [
  f,
  JSON.parse(readFileSync(`${golden}e2e/${f}`, 'utf8')) as GoldenCase,
]);

let tok: Tokenizer;
let loadMs = 0;
beforeAll(() => {
  const json = JSON.parse(readFileSync(`${golden}realvocab/tokenizer.json`, 'utf8'));
  const t0 = performance.now();
  tok = Tokenizer.fromJSON(json);
  loadMs = performance.now() - t0;
});

/** Feeds ids one by one; returns the deltas (the flush is the last entry). */
function stream(ids: readonly number[], skipSpecialTokens = false): string[] {
  const d = tok.streamingDecoder({ skipSpecialTokens });
  const out = ids.map((id) => d.push(id));
  out.push(d.flush());
  return out;
}

/** True when `s` holds an unpaired UTF-16 surrogate (a split character). */
function hasLoneSurrogate(s: string): boolean {
  return /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);
}

describe('Qwen3 tokenizer vs the official tokenizer', () => {
  it('builds from tokenizer.json quickly, with the official vocabulary size', () => {
    // ~0.3 s on a loaded 2-core CI machine; the bound only catches pathological regressions.
    expect(loadMs).toBeLessThan(5000);
    expect(tok.vocabSize).toBe(tokCases.vocab_size_with_added);
    expect(tok.tokenToId('<|im_end|>')).toBe(151645);
    expect(tok.idToToken(151645)).toBe('<|im_end|>');
    expect(tok.tokenToId('Ġworld')).toBe(1879);
    expect(tok.idToToken(151669)).toBeUndefined();
    expect(tok.isSpecialId(151645)).toBe(true);
    expect(tok.isSpecialId(151667)).toBe(false); // <think> is an added token, not special
  });

  it.each(tokCases.cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    expect(tok.encode(c.text)).toEqual(c.ids);
    expect(tok.tokenize(c.text)).toEqual(c.tokens);
    expect(tok.decode(c.ids)).toBe(c.decoded);
    expect(tok.decode(c.ids, { skipSpecialTokens: true })).toBe(c.decoded_skip_special);
    expect(c.ids.map((id) => tok.decode([id]))).toEqual(c.per_token_decode);
    expect(tok.decode(c.ids) === c.text).toBe(c.roundtrip_exact);
    expect(tok.decode(c.ids) === c.text.normalize('NFC')).toBe(c.roundtrip_equals_nfc_input);
    // Only special added tokens are split as text; `<think>` etc. still match.
    expect(tok.encode(c.text, { splitSpecialTokens: true })).toEqual(c.ids_split_special_tokens ?? c.ids);
    // Qwen's post-processor adds nothing.
    expect(tok.encode(c.text, { addSpecialTokens: false })).toEqual(c.ids);
  });

  it.each(tokCases.decode_cases.map((c) => [c.name, c] as const))('decode-only: %s', (_name, c) => {
    expect(tok.decode(c.ids)).toBe(c.decoded);
    if (c.decoded_skip_special !== undefined) expect(tok.decode(c.ids, { skipSpecialTokens: true })).toBe(c.decoded_skip_special);
    if (c.per_token_decode) expect(c.ids.map((id) => tok.decode([id]))).toEqual(c.per_token_decode);
    if (c.tokens) expect(c.ids.map((id) => tok.idToToken(id) ?? null)).toEqual(c.tokens);
  });

  it.each(e2eCases)('rendered prompt of %s → prompt_ids and prompt_tokens', (_f, c) => {
    const prompt = c.prompt as string;
    expect(tok.encode(prompt)).toEqual(c.prompt_ids);
    expect(tok.tokenize(prompt)).toEqual(c.prompt_tokens);
    expect(tok.decode(c.prompt_ids as number[])).toBe(prompt);
  });

  it.each(e2eCases)('%s: generated ids decode to generated_text', (_f, c) => {
    const ids = tensor(c, 'generated_ids').data;
    expect(tok.decode(ids)).toBe(c.generated_text);
    expect(tok.decode(ids, { skipSpecialTokens: true })).toBe(c.generated_text_skip_special);
    expect(stream(ids).join('')).toBe(c.generated_text);
    expect(stream(ids, true).join('')).toBe(c.generated_text_skip_special);
  });

  it('encodes long inputs fast (word cache, heap-based merges)', () => {
    const para = tokCases.cases.map((c) => c.text).join('\n');
    const big = para.repeat(40); // ~60 KB of mixed scripts, emoji, code
    const t0 = performance.now();
    const ids = tok.encode(big);
    const ms = performance.now() - t0;
    expect(tok.decode(ids)).toBe(big.normalize('NFC'));
    // One word of 30 000 letters: the merge loop must not be quadratic.
    const word = 'abcdefghij'.repeat(3000);
    const t1 = performance.now();
    const wordIds = tok.encode(word);
    const wordMs = performance.now() - t1;
    expect(tok.decode(wordIds)).toBe(word);
    expect(ms + wordMs).toBeLessThan(5000);
  });
});

describe('StreamingDecoder', () => {
  it('holds back the bytes of a character split over tokens (" 🤖" = 3 byte tokens)', () => {
    // 11162 = bytes 20 F0 9F, 97 = A4, 244 = 96 (see decode_cases[0]).
    expect(stream([11162, 97, 244])).toEqual([' ', '', '🤖', '']);
  });

  it('emits CJK and emoji whole, and the deltas add up to decode()', () => {
    const texts = ['我是一个小模型 🤖，喜欢写代码。', '👨‍👩‍👧‍👦 🇨🇳🇺🇸 ✨ 𝕏 𠀀𠀁 नमस्ते ก', '龘靐齉爩 麤', '鬱鬱蔥蔥，饕餮之徒'];
    for (const text of texts) {
      const ids = tok.encode(text);
      // At least one token of these strings is a partial UTF-8 sequence on its own.
      expect(ids.some((id) => tok.decode([id]).includes('\ufffd'))).toBe(true);
      const deltas = stream(ids);
      expect(deltas.join('')).toBe(text);
      for (const d of deltas) {
        expect(d.includes('\ufffd')).toBe(false);
        expect(hasLoneSurrogate(d)).toBe(false);
      }
    }
  });

  it('equals decode() on every golden string and prompt, with and without skipping special tokens', () => {
    const idLists = [...tokCases.cases.map((c) => c.ids), ...tokCases.decode_cases.map((c) => c.ids)];
    for (const [, c] of e2eCases) idLists.push(c.prompt_ids as number[]);
    for (const ids of idLists) {
      for (const skip of [false, true]) {
        const deltas = stream(ids, skip);
        const whole = tok.decode(ids, { skipSpecialTokens: skip });
        expect(deltas.join('')).toBe(whole);
        if (!whole.includes('\ufffd')) for (const d of deltas) expect(d.includes('\ufffd')).toBe(false);
      }
    }
  });

  it('turns bytes that can never complete into U+FFFD, like decode()', () => {
    // " \xF0\x9F" then an ASCII token: the cut character is invalid.
    const ids = [11162, tok.tokenToId('a')!];
    expect(stream(ids)).toEqual([' ', '\ufffda', '']);
    expect(tok.decode(ids)).toBe(' \ufffda');
    // An added token ends the pending bytes.
    expect(stream([11162, 151645])).toEqual([' ', '\ufffd<|im_end|>', '']);
    // Pending bytes at the end come out on flush.
    expect(stream([11162, 97])).toEqual([' ', '', '\ufffd']);
    // A skipped special token does not end the byte run (as in the official decode).
    expect(stream([11162, 151645, 97, 244], true).join('')).toBe(tok.decode([11162, 151645, 97, 244], { skipSpecialTokens: true }));
    expect(tok.decode([11162, 151645, 97, 244], { skipSpecialTokens: true })).toBe(' 🤖');
  });

  it('ignores ids with no token (embedding padding rows) without crashing', () => {
    expect(stream([9707, 151689, 151935, 1879]).join('')).toBe('Hello world');
  });

  it('keeps a leading U+FEFF (no BOM stripping)', () => {
    const ids = tok.encode('\ufeffhi');
    expect(stream(ids).join('')).toBe('\ufeffhi');
    expect(tok.decode(ids)).toBe('\ufeffhi');
  });
});

describe('Oniguruma → JavaScript regex translation', () => {
  const qwen = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  const split = (pattern: string, s: string) => s.match(new RegExp(translateOnigRegex(pattern), 'gu'));

  it('splits like the Qwen2 pre-tokenizer', () => {
    expect(split(qwen, "I'm HE'S we'Ll 12 ab\n\n  x")).toEqual(['I', "'m", ' HE', "'S", ' we', "'Ll", ' ', '1', '2', ' ab', '\n\n', ' ', ' x']);
    // Case-insensitive contractions include the characters that fold onto the letters.
    expect(split(qwen, "it'ſ")).toEqual(['it', "'ſ"]);
  });

  it('reads \\s as White_Space (Oniguruma), not JavaScript \\s', () => {
    const re = new RegExp(`^${translateOnigRegex('\\s')}$`, 'u');
    expect(re.test('\u0085')).toBe(true); // NEL: White_Space, not JS \s
    expect(re.test('\ufeff')).toBe(false); // BOM: JS \s, not White_Space
    expect(re.test('\u3000')).toBe(true);
    // So U+FEFF joins the following letters as a word.
    expect(split(qwen, 'd\ufeffe')).toEqual(['d', '\ufeffe']);
  });

  it('translates ., ^, $, \\d, \\x{…} and escaped punctuation', () => {
    expect(split('.+', 'ab\r\ncd')).toEqual(['ab\r', 'cd']);
    expect(split('^a', 'aa\na')).toEqual(['a', 'a']);
    expect(split('a$', 'aa\na')).toEqual(['a', 'a']);
    expect(split('\\d+', 'x١٢3y')).toEqual(['١٢3']);
    expect(split('\\x{4E00}', '一二')).toEqual(['一']);
    expect(split("\\'\\-", "a'-b")).toEqual(["'-"]);
    expect(split('\\p{N}{1,3}', '12345')).toEqual(['123', '45']);
    expect(split('a{', 'a{')).toEqual(['a{']);
  });

  it('computes case variants by Unicode simple case folding', () => {
    expect(caseVariants('s')).toEqual(['S', 's', 'ſ']);
    expect(caseVariants('k')).toEqual(['K', 'k', '\u212a']); // KELVIN SIGN
    expect(caseVariants('σ')).toEqual(['Σ', 'ς', 'σ']);
  });

  it('refuses constructs it cannot translate faithfully', () => {
    for (const p of ['a++', '(?>a)', '\\h', '[a[b]]', '(?i:[a-z])', '\\A']) {
      expect(() => translateOnigRegex(p), p).toThrow(TokenizerConfigError);
    }
  });
});

describe('added tokens, normalizers, split behaviours (synthetic tokenizer.json)', () => {
  // Vocabulary: the 256 byte-level characters (ids 0–255) plus "hi" (256) and "Ġhi" (257).
  const byteChars: string[] = [];
  {
    let next = 256;
    for (let b = 0; b < 256; b++) {
      const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
      byteChars.push(String.fromCharCode(printable ? b : next++));
    }
  }
  const vocab: Record<string, number> = {};
  byteChars.forEach((c, i) => {
    vocab[c] = i;
  });
  vocab.hi = 256;
  vocab['Ġh'] = 257;
  vocab['Ġhi'] = 258;
  const added = (id: number, content: string, extra: Record<string, boolean>) => ({
    id,
    content,
    special: true,
    lstrip: false,
    rstrip: false,
    single_word: false,
    normalized: false,
    ...extra,
  });
  const base = (over: Partial<TokenizerJson> = {}): TokenizerJson => ({
    added_tokens: [
      added(300, '<L>', { lstrip: true }),
      added(301, '<R>', { rstrip: true }),
      added(302, 'word', { single_word: true }),
      added(303, 'xy', { normalized: true, special: false }),
      added(304, '<LONG>', {}),
      added(305, '<LO', {}),
    ],
    normalizer: { type: 'Lowercase' },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: ' ?\\p{L}+|\\s+' }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, use_regex: false },
      ],
    },
    decoder: { type: 'ByteLevel' },
    model: { type: 'BPE', vocab, merges: ['Ġ h', ['h', 'i'], ['Ġh', 'i']] },
    ...over,
  });
  const t = Tokenizer.fromJSON(base());
  const b = (s: string) => [...new TextEncoder().encode(s)].map((x) => vocab[byteChars[x]]);

  it('merges in rank order with both merge formats', () => {
    expect(t.encode('hi hi')).toEqual([256, 258]);
  });

  it('lstrip / rstrip absorb the whitespace next to the token', () => {
    expect(t.encode('hi  <L>')).toEqual([256, 300]);
    expect(t.encode('<R>   hi')).toEqual([301, 256]);
    expect(t.decode([256, 300])).toBe('hi<L>');
  });

  it('single_word matches only between non-word characters', () => {
    expect(t.encode('a word.')).toContain(302);
    expect(t.encode('awordb')).not.toContain(302);
    expect(t.encode('words')).not.toContain(302);
  });

  it('normalized tokens match after normalization, non-normalized ones before', () => {
    expect(t.encode('XY')).toEqual([303]); // lowercased first
    expect(t.encode('<l>')).toEqual(b('<l>')); // '<L>' is matched on the raw text only
  });

  it('matches leftmost-longest', () => {
    expect(t.encode('<LONG>')).toEqual([304]);
    expect(t.encode('<LOX')).toEqual([305, ...b('x')]);
  });

  it('applies TemplateProcessing only with addSpecialTokens', () => {
    const tp = Tokenizer.fromJSON(
      base({
        post_processor: {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: '<L>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          special_tokens: { '<L>': { id: '<L>', ids: [300], tokens: ['<L>'] } },
        },
      }),
    );
    expect(tp.encode('hi')).toEqual([300, 256]);
    expect(tp.encode('hi', { addSpecialTokens: false })).toEqual([256]);
  });

  it('supports the Split behaviours', () => {
    const withBehavior = (behavior: string, invert = false) =>
      Tokenizer.fromJSON(
        base({
          normalizer: null,
          pre_tokenizer: {
            type: 'Sequence',
            pretokenizers: [
              { type: 'Split', pattern: { String: '-' }, behavior, invert },
              { type: 'ByteLevel', add_prefix_space: false, use_regex: false },
            ],
          },
          model: { type: 'BPE', vocab: { ...vocab, 'a-': 400, '-b': 401, '--': 402, 'a--b': 403 }, merges: [['a', '-'], ['-', 'b'], ['-', '-']] },
        }),
      );
    expect(withBehavior('Isolated').encode('a--b')).toEqual([vocab.a, vocab['-'], vocab['-'], vocab.b]);
    expect(withBehavior('Removed').encode('a--b')).toEqual([vocab.a, vocab.b]);
    expect(withBehavior('MergedWithPrevious').encode('a-b')).toEqual([400, vocab.b]);
    expect(withBehavior('MergedWithNext').encode('a-b')).toEqual([vocab.a, 401]);
    expect(withBehavior('Contiguous').encode('a--b')).toEqual([vocab.a, 402, vocab.b]);
    expect(withBehavior('Removed', true).encode('a-b')).toEqual([vocab['-']]);
  });

  it('rejects components it does not implement', () => {
    expect(() => Tokenizer.fromJSON(base({ normalizer: { type: 'BertNormalizer' } }))).toThrow(TokenizerConfigError);
    expect(() => Tokenizer.fromJSON(base({ decoder: { type: 'WordPiece' } }))).toThrow(TokenizerConfigError);
    expect(() => Tokenizer.fromJSON({ ...base(), model: { ...base().model, type: 'Unigram' as 'BPE' } })).toThrow(
      TokenizerConfigError,
    );
    expect(() => Tokenizer.fromJSON({ ...base(), model: { ...base().model, merges: [['h', 'q']] } })).toThrow(
      TokenizerConfigError,
    );
  });
});
