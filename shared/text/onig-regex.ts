/**
 * Translates the Oniguruma regexes found in `tokenizer.json` (Hugging Face tokenizers compiles
 * them with Oniguruma, Unicode semantics) into JavaScript `u`-flag regexes that match the same
 * strings. Only what JavaScript lacks or reads differently is rewritten:
 *
 *   Oniguruma            JavaScript (u flag)                 why
 *   (?i:…)               (?:…) with letters → [sSſ]          scoped modifiers need Node ≥ 23 / recent browsers
 *   \s  \S               \p{White_Space}  \P{White_Space}    JS \s adds U+FEFF and lacks U+0085
 *   \d  \D               \p{Nd}  \P{Nd}                      JS \d is ASCII only
 *   \w  \W               [\p{Alphabetic}\p{M}\p{Nd}\p{Pc}]   JS \w is ASCII only
 *   \x{HHHH}             \u{HHHH}
 *   .                    [^\n]                               JS . also stops at \r, U+2028, U+2029
 *   ^  $                 (?<![^\n])  (?![^\n])               Oniguruma anchors are always per line
 *   \' \" … (identity)   the character itself                u-mode rejects identity escapes
 *
 * Constructs that cannot be translated faithfully (possessive quantifiers, atomic groups,
 * nested classes, case-insensitive ranges, \b, \h, \A, \z, …) raise TokenizerConfigError
 * instead of silently behaving differently.
 */
import { TokenizerConfigError } from './errors.ts';

/** Characters that must stay escaped in a u-mode JS regex (outside a class). */
const JS_SYNTAX = new Set(['^', '$', '\\', '.', '*', '+', '?', '(', ')', '[', ']', '{', '}', '|', '/']);

/**
 * Code points whose simple case folding cannot be reached from the letter they fold to by
 * toLowerCase/toUpperCase (e.g. 'ſ' U+017F folds to 's', but 's'.toUpperCase() is 'S').
 * Found by a scan of all code points.
 */
const FOLD_EXTRAS: readonly number[] = [
  0xb5, 0x131, 0x17f, 0x1c5, 0x1c8, 0x1cb, 0x1f2, 0x345, 0x3c2, 0x3d0, 0x3d1, 0x3d5, 0x3d6, 0x3f0, 0x3f1, 0x3f4,
  0x3f5, 0x1c80, 0x1c81, 0x1c82, 0x1c83, 0x1c84, 0x1c85, 0x1c86, 0x1c87, 0x1c88, 0x1e9b, 0x1e9e, 0x1f88, 0x1f89,
  0x1f8a, 0x1f8b, 0x1f8c, 0x1f8d, 0x1f8e, 0x1f8f, 0x1f98, 0x1f99, 0x1f9a, 0x1f9b, 0x1f9c, 0x1f9d, 0x1f9e, 0x1f9f,
  0x1fa8, 0x1fa9, 0x1faa, 0x1fab, 0x1fac, 0x1fad, 0x1fae, 0x1faf, 0x1fbc, 0x1fbe, 0x1fcc, 0x1ffc, 0x2126, 0x212a,
  0x212b,
];

const WORD_CLASS_BODY = '\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}';

function unsupported(pattern: string, what: string): never {
  throw new TokenizerConfigError(`pre-tokenizer regex ${JSON.stringify(pattern)}: ${what} is not supported`);
}

/** Single-code-point case relatives of `c` under toLowerCase/toUpperCase, transitively. */
function caseClosure(c: string): Set<string> {
  const set = new Set([c]);
  const queue = [c];
  while (queue.length > 0) {
    const x = queue.pop()!;
    for (const y of [x.toLowerCase(), x.toUpperCase()]) {
      if ([...y].length === 1 && !set.has(y)) {
        set.add(y);
        queue.push(y);
      }
    }
  }
  return set;
}

/** Characters escaped inside a JS character class. */
const CLASS_SPECIAL = new Set(['\\', ']', '[', '-', '^']);

/** Escapes one code point for use inside a JS character class. */
function classLiteral(c: string): string {
  const cp = c.codePointAt(0)!;
  if (cp < 0x20 || cp === 0x7f) return `\\u{${cp.toString(16)}}`;
  return CLASS_SPECIAL.has(c) ? `\\${c}` : c;
}

/**
 * Every code point that matches `c` case-insensitively under Unicode simple case folding (what
 * Oniguruma's `(?i)` does for a single character, and what a JS `iu` regex does).
 */
export function caseVariants(c: string): string[] {
  const candidates = caseClosure(c);
  for (const cp of FOLD_EXTRAS) {
    const x = String.fromCodePoint(cp);
    const rel = caseClosure(x);
    if ([...rel].some((r) => candidates.has(r))) for (const r of rel) candidates.add(r);
  }
  // Let the JS engine's Unicode folding decide which candidates are truly equivalent.
  const probe = new RegExp(`^[${classLiteral(c)}]$`, 'iu');
  return [...candidates].filter((x) => x === c || probe.test(x)).sort();
}

function isLetter(c: string): boolean {
  return /^\p{L}$/u.test(c);
}

/** True when `s` (at `i`, just after `{`) is a valid quantifier body `n}`, `n,}`, `n,m}` or `,m}`. */
function quantifierAt(s: string, i: number): number {
  const m = /^(\d*)(,(\d*))?\}/.exec(s.slice(i));
  if (!m || (m[1] === '' && (m[3] ?? '') === '')) return -1;
  return m[0].length;
}

interface Group {
  ci: boolean;
}

/**
 * Returns a JS regex source (for the `u` flag) equivalent to an Oniguruma pattern.
 *
 * @example
 * new RegExp(translateOnigRegex("(?i:'s|'t)|\\s+"), 'gu')
 */
export function translateOnigRegex(pattern: string): string {
  let out = '';
  const groups: Group[] = [{ ci: false }];
  let inClass = false;
  let classStart = false; // just after '[' or '[^'
  const cps = [...pattern];
  const src = cps.join('');
  let i = 0;
  const ci = () => groups[groups.length - 1].ci;
  while (i < cps.length) {
    const c = cps[i];
    if (c === '\\') {
      const e = cps[i + 1];
      if (e === undefined) unsupported(src, 'a trailing backslash');
      i += 2;
      classStart = false;
      switch (e) {
        case 's':
          out += '\\p{White_Space}';
          continue;
        case 'S':
          out += '\\P{White_Space}';
          continue;
        case 'd':
          out += '\\p{Nd}';
          continue;
        case 'D':
          out += '\\P{Nd}';
          continue;
        case 'w':
          out += inClass ? WORD_CLASS_BODY : `[${WORD_CLASS_BODY}]`;
          continue;
        case 'W':
          if (inClass) unsupported(src, '\\W inside a character class');
          out += `[^${WORD_CLASS_BODY}]`;
          continue;
        case 'p':
        case 'P': {
          const close = cps.indexOf('}', i);
          if (cps[i] !== '{' || close < 0) unsupported(src, `\\${e} without {…}`);
          const name = cps.slice(i + 1, close).join('');
          if (name.startsWith('^')) out += `\\${e === 'p' ? 'P' : 'p'}{${name.slice(1)}}`;
          else out += `\\${e}{${name}}`;
          i = close + 1;
          continue;
        }
        case 'x': {
          if (cps[i] === '{') {
            const close = cps.indexOf('}', i);
            if (close < 0) unsupported(src, '\\x{ without }');
            out += `\\u{${cps.slice(i + 1, close).join('')}}`;
            i = close + 1;
          } else {
            const hex = cps.slice(i, i + 2).join('');
            if (!/^[0-7][0-9a-fA-F]$/.test(hex)) unsupported(src, `\\x${hex} (a raw byte above 0x7F)`);
            out += `\\x${hex}`;
            i += 2;
          }
          continue;
        }
        case 'r':
        case 'n':
        case 't':
        case 'f':
        case 'v':
          out += `\\${e}`;
          continue;
        case 'u':
          out += `\\u${cps.slice(i, i + 4).join('')}`;
          i += 4;
          continue;
        default:
          if (/[0-9]/.test(e)) {
            if (inClass || e === '0') unsupported(src, `\\${e}`);
            out += `\\${e}`;
            continue;
          }
          if (/[A-Za-z]/.test(e)) unsupported(src, `\\${e}`);
          // An escaped punctuation character stands for itself.
          if (inClass) out += classLiteral(e);
          else out += JS_SYNTAX.has(e) ? `\\${e}` : e;
          continue;
      }
    }
    if (inClass) {
      if (c === ']' && !classStart) {
        inClass = false;
        out += ']';
      } else if (c === '[') {
        unsupported(src, 'a nested character class');
      } else if (c === '&' && cps[i + 1] === '&') {
        unsupported(src, 'class intersection &&');
      } else if (c === '-' && !classStart && cps[i + 1] !== ']') {
        if (ci()) unsupported(src, 'a range inside a case-insensitive class');
        out += '-';
      } else if (ci() && isLetter(c)) {
        out += caseVariants(c).map(classLiteral).join('');
      } else {
        out += classLiteral(c);
      }
      classStart = false;
      i++;
      continue;
    }
    switch (c) {
      case '[':
        inClass = true;
        classStart = true;
        out += '[';
        if (cps[i + 1] === '^') {
          out += '^';
          i++;
        }
        if (cps[i + 1] === ']') {
          // Oniguruma reads a ']' right after '[' or '[^' as a literal.
          out += '\\]';
          i++;
          classStart = false;
        }
        i++;
        continue;
      case '(': {
        const rest = cps.slice(i + 1, i + 4).join('');
        if (rest.startsWith('?i:') || rest.startsWith('?-i')) {
          const on = rest.startsWith('?i:');
          const colon = on ? i + 3 : cps.indexOf(':', i);
          if (!on && cps.slice(i, colon + 1).join('') !== '(?-i:') unsupported(src, 'this inline option group');
          groups.push({ ci: on });
          out += '(?:';
          i = colon + 1;
          continue;
        }
        if (rest.startsWith('?i)')) {
          groups[groups.length - 1].ci = true;
          i += 4;
          continue;
        }
        if (rest.startsWith('?>')) unsupported(src, 'an atomic group');
        if (rest.startsWith('?#')) {
          const close = cps.indexOf(')', i);
          i = close < 0 ? cps.length : close + 1;
          continue;
        }
        if (rest.startsWith('?') && !/^\?(:|=|!|<=|<!|<[A-Za-z])/.test(cps.slice(i + 1, i + 4).join(''))) {
          unsupported(src, `the group syntax (${rest}`);
        }
        groups.push({ ci: ci() });
        out += '(';
        i++;
        continue;
      }
      case ')':
        if (groups.length === 1) unsupported(src, 'an unbalanced )');
        groups.pop();
        out += ')';
        i++;
        continue;
      case '.':
        out += '[^\\n]';
        i++;
        continue;
      case '^':
        out += '(?<![^\\n])';
        i++;
        continue;
      case '$':
        out += '(?![^\\n])';
        i++;
        continue;
      case '{': {
        const len = quantifierAt(src, cps.slice(0, i + 1).join('').length);
        if (len < 0) {
          out += '\\{';
          i++;
        } else {
          out += `{${cps.slice(i + 1, i + len).join('')}`;
          i += len;
          if (cps[i] + cps[i + 1] === '}+') unsupported(src, 'a possessive quantifier');
          // cps[i] is the closing brace
          out += '}';
          i++;
        }
        continue;
      }
      case '}':
        out += '\\}';
        i++;
        continue;
      case '*':
      case '+':
      case '?':
        if (cps[i + 1] === '+') unsupported(src, 'a possessive quantifier');
        out += c;
        i++;
        continue;
      default:
        if (ci() && isLetter(c)) {
          const v = caseVariants(c);
          out += v.length === 1 ? classLiteral(c) : `[${v.map(classLiteral).join('')}]`;
        } else {
          out += c;
        }
        i++;
    }
  }
  if (inClass) unsupported(src, 'an unterminated character class');
  if (groups.length !== 1) unsupported(src, 'an unbalanced (');
  return out;
}
