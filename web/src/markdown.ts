/**
 * A small, safe Markdown renderer for model answers. It turns text into HTML built only from a
 * fixed set of tags; every character of the input reaches the output escaped, so no input can
 * inject markup, attributes or script:
 *
 *   blocks   paragraphs (single newlines become <br>), fenced code (``` or ~~~ with an optional
 *            language name; may be unclosed while an answer streams), unordered (- * +) and ordered (1. 1)) lists, nested by
 *            indentation, ATX headings (# … ######, rendered as h3–h6), thematic breaks (---)
 *   inline   `code`, **bold** / __bold__, *italic* / _italic_, [text](http(s) URL), backslash
 *            escapes
 *
 * Tags emitted: p br pre code strong em ul ol li h3 h4 h5 h6 hr, and `a` with exactly
 * `href` (http: or https: only, attribute-escaped), `rel="noopener noreferrer"` and
 * `target="_blank"`; `code` in a fenced block may carry `class="language-X"` with X in
 * [A-Za-z0-9_+-]. A link whose URL is anything else (javascript:, data:, relative) is left as
 * plain text. No other HTML is ever produced, and raw HTML in the input is shown as text.
 */

/** Escapes text for an HTML text node or a double-quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : '&#39;'));
}

/** The URL if it is an absolute http(s) URL without whitespace or control characters, else null. */
export function safeHref(raw: string): string | null {
  const url = raw.trim();
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (url === '' || /[\s\u0000-\u001f\u007f<>"'`\\]/.test(url)) return null;
  if (!/^https?:\/\//i.test(url)) return null;
  try {
    const parsed = new URL(url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return null;
  } catch {
    return null;
  }
  return url;
}

const PUNCTUATION = /[!-/:-@[-`{-~]/;
const isWordChar = (c: string | undefined) => c !== undefined && /[\p{L}\p{N}]/u.test(c);
const isSpace = (c: string | undefined) => c === undefined || /\s/.test(c);

/**
 * Renders inline Markdown (code spans, emphasis, links, escapes) to safe HTML.
 * `allowLinks` is false inside link text (no nested links).
 */
export function renderInline(text: string, allowLinks = true): string {
  let out = '';
  let i = 0;
  const n = text.length;
  // Per delimiter, the smallest start from which no closer exists (searches never go quadratic).
  const noCloserFrom = new Map<string, number>();
  while (i < n) {
    const c = text[i]!;
    if (c === '\\' && i + 1 < n && PUNCTUATION.test(text[i + 1]!)) {
      out += escapeHtml(text[i + 1]!);
      i += 2;
      continue;
    }
    if (c === '`') {
      let run = 1;
      while (text[i + run] === '`') run++;
      const fence = '`'.repeat(run);
      // The closing run must have exactly the same length.
      let j = text.indexOf(fence, i + run);
      while (j !== -1 && text[j + run] === '`') {
        let k = j;
        while (text[k] === '`') k++;
        j = text.indexOf(fence, k);
      }
      if (j !== -1) {
        let body = text.slice(i + run, j).replace(/\n/g, ' ');
        if (body.length > 2 && body.startsWith(' ') && body.endsWith(' ') && body.trim() !== '') body = body.slice(1, -1);
        out += `<code>${escapeHtml(body)}</code>`;
        i = j + run;
        continue;
      }
      out += escapeHtml(fence);
      i += run;
      continue;
    }
    if (c === '[' && allowLinks) {
      const link = parseLink(text, i);
      if (link) {
        const href = safeHref(link.url);
        const label = renderInline(link.text, false);
        out += href ? `<a href="${escapeHtml(href)}" rel="noopener noreferrer" target="_blank">${label}</a>` : `[${label}](${escapeHtml(link.url)})`;
        i = link.end;
        continue;
      }
    }
    if (c === '*' || c === '_') {
      const double = text[i + 1] === c;
      const delim = double ? c + c : c;
      const after = text[i + delim.length];
      const before = text[i - 1];
      // `***x***` opens as ** around *x*.
      const opens = !isSpace(after) && (double || after !== c) && (c === '*' || !isWordChar(before));
      if (opens) {
        const from = i + delim.length;
        const known = noCloserFrom.get(delim);
        const close = known !== undefined && from >= known ? -1 : findCloser(text, from, delim);
        if (close === -1 && (known === undefined || from < known)) noCloserFrom.set(delim, from);
        if (close !== -1) {
          const inner = renderInline(text.slice(i + delim.length, close), allowLinks);
          out += double ? `<strong>${inner}</strong>` : `<em>${inner}</em>`;
          i = close + delim.length;
          continue;
        }
      }
      out += escapeHtml(delim);
      i += delim.length;
      continue;
    }
    if (c === '\n') {
      out += '<br>';
      i++;
      continue;
    }
    out += escapeHtml(c);
    i++;
  }
  return out;
}

/** Index of the delimiter that closes an emphasis opened before `from`, or -1. */
function findCloser(text: string, from: number, delim: string): number {
  const c = delim[0]!;
  for (let j = from; j < text.length; j++) {
    const ch = text[j]!;
    if (ch === '\\') {
      j++;
      continue;
    }
    if (ch === '`') {
      // Emphasis does not close inside a code span.
      let run = 1;
      while (text[j + run] === '`') run++;
      const end = text.indexOf('`'.repeat(run), j + run);
      if (end !== -1) j = end + run - 1;
      continue;
    }
    if (ch === c) {
      // A run of delimiters closes with its last one or two: `**b***` closes * after **b**,
      // `***` closes ** around an inner *…*; a single delimiter skips even runs (inner bold).
      const run = countRun(text, j, c);
      const prev = text[j - 1];
      const next = text[j + run];
      const at = delim.length === 2 ? (run >= 2 ? j + run - 2 : -1) : run % 2 === 1 ? j + run - 1 : -1;
      if (at > from && !isSpace(prev) && (c === '*' || !isWordChar(next))) return at;
      j += run - 1;
    }
  }
  return -1;
}

function countRun(text: string, at: number, c: string): number {
  let k = at;
  while (text[k] === c) k++;
  return k - at;
}

/** `[text](url)` starting at `start`, or null when it is not a complete link (titles are not supported). */
function parseLink(text: string, start: number): { text: string; url: string; end: number } | null {
  let depth = 0;
  let j = start;
  for (; j < text.length; j++) {
    const ch = text[j];
    if (ch === '\\') {
      j++;
      continue;
    }
    if (ch === '[') depth++;
    else if (ch === ']') {
      depth--;
      if (depth === 0) break;
    } else if (ch === '\n' && text[j + 1] === '\n') return null;
  }
  if (j >= text.length || text[j + 1] !== '(') return null;
  const label = text.slice(start + 1, j);
  let k = j + 2;
  let parens = 1;
  let url = '';
  for (; k < text.length; k++) {
    const ch = text[k]!;
    if (ch === '(') parens++;
    else if (ch === ')') {
      parens--;
      if (parens === 0) break;
    } else if (ch === '\n') return null;
    url += ch;
  }
  if (parens !== 0 || /\s/.test(url.trim()) || url.trim() === '') return null;
  return { text: label, url: url.trim(), end: k + 1 };
}

interface ListItemLine {
  indent: number;
  ordered: boolean;
  start: number;
  body: string;
  /** Width of the marker and its following spaces, for continuation lines. */
  contentIndent: number;
}

/** A fence line: the marker, then nothing or a language name (other info strings stay text). */
const FENCE = /^ {0,3}(`{3,}|~{3,})[ \t]*([A-Za-z0-9_+-]{0,32})[ \t]*$/;
const BULLET = /^(\s*)([-*+])(\s+)(.*)$/;
const ORDERED = /^(\s*)(\d{1,9})([.)])(\s+)(.*)$/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;

function listItem(line: string): ListItemLine | null {
  const b = BULLET.exec(line);
  if (b) return { indent: indentWidth(b[1]!), ordered: false, start: 1, body: b[4]!, contentIndent: indentWidth(b[1]!) + 1 + b[3]!.length };
  const o = ORDERED.exec(line);
  if (o) {
    return {
      indent: indentWidth(o[1]!),
      ordered: true,
      start: Number(o[2]),
      body: o[5]!,
      contentIndent: indentWidth(o[1]!) + o[2]!.length + 1 + o[4]!.length,
    };
  }
  return null;
}

function indentWidth(ws: string): number {
  let w = 0;
  for (const ch of ws) w += ch === '\t' ? 4 : 1;
  return w;
}

const leadingIndent = (line: string) => indentWidth(/^\s*/.exec(line)![0]);

/** Removes up to `width` columns of leading whitespace (a tab counts 4). */
function dedent(line: string, width: number): string {
  let w = 0;
  let k = 0;
  while (k < line.length && w < width && (line[k] === ' ' || line[k] === '\t')) {
    w += line[k] === '\t' ? 4 : 1;
    k++;
  }
  return line.slice(k);
}

/** Renders Markdown source to safe HTML (see the module comment for what is supported). */
export function renderMarkdown(source: string): string {
  const lines = source.replace(/\r\n?/g, '\n').split('\n');
  return renderBlocks(lines);
}

function renderBlocks(lines: string[]): string {
  let out = '';
  let i = 0;
  let para: string[] = [];
  const flushPara = () => {
    if (para.length > 0) out += `<p>${renderInline(para.join('\n'))}</p>`;
    para = [];
  };
  while (i < lines.length) {
    const line = lines[i]!;
    const fence = FENCE.exec(line);
    if (fence) {
      flushPara();
      const marker = fence[1]!;
      const lang = fence[2]!;
      const body: string[] = [];
      const close = new RegExp(`^ {0,3}${marker[0] === '`' ? '`' : '~'}{${marker.length},}\\s*$`);
      i++;
      while (i < lines.length) {
        const l = lines[i]!;
        if (close.test(l)) {
          i++;
          break;
        }
        body.push(l);
        i++;
      }
      const cls = lang ? ` class="language-${escapeHtml(lang)}"` : '';
      out += `<pre><code${cls}>${escapeHtml(body.join('\n'))}</code></pre>`;
      continue;
    }
    if (line.trim() === '') {
      flushPara();
      i++;
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      flushPara();
      const level = Math.min(6, heading[1]!.length + 2);
      out += `<h${level}>${renderInline(heading[2]!)}</h${level}>`;
      i++;
      continue;
    }
    if (RULE.test(line) && para.length === 0) {
      out += '<hr>';
      i++;
      continue;
    }
    const item = listItem(line);
    if (item && (para.length === 0 || item.body.trim() !== '')) {
      flushPara();
      const [html, next] = renderList(lines, i);
      out += html;
      i = next;
      continue;
    }
    para.push(line.trim());
    i++;
  }
  flushPara();
  return out;
}

/** Renders the list starting at `lines[start]`; returns its HTML and the first line after it. */
function renderList(lines: string[], start: number): [string, number] {
  const first = listItem(lines[start]!)!;
  const tag = first.ordered ? 'ol' : 'ul';
  const startAttr = first.ordered && first.start !== 1 ? ` start="${first.start}"` : '';
  let out = `<${tag}${startAttr}>`;
  let i = start;
  while (i < lines.length) {
    const item = listItem(lines[i]!);
    if (!item || item.indent !== first.indent || item.ordered !== first.ordered) break;
    // The item's own lines: its first line, then lines indented past its marker (nested lists,
    // continuation text) or lazy continuation text, until a blank line followed by a dedent.
    const body: string[] = [item.body];
    i++;
    while (i < lines.length) {
      const l = lines[i]!;
      if (l.trim() === '') {
        const next = lines[i + 1];
        if (next !== undefined && next.trim() !== '' && leadingIndent(next) >= item.contentIndent) {
          body.push('');
          i++;
          continue;
        }
        break;
      }
      const sub = listItem(l);
      if (sub && sub.indent <= first.indent) break;
      if (FENCE.exec(l) && leadingIndent(l) < item.contentIndent) break;
      if (leadingIndent(l) >= item.contentIndent || sub) body.push(dedent(l, item.contentIndent));
      else body.push(l.trim());
      i++;
    }
    const inner = body.length === 1 ? renderInline(body[0]!) : renderItemBody(body);
    out += `<li>${inner}</li>`;
    while (i < lines.length && lines[i]!.trim() === '') {
      const next = lines[i + 1];
      const nextItem = next === undefined ? null : listItem(next);
      if (nextItem && nextItem.indent === first.indent && nextItem.ordered === first.ordered) i++;
      else break;
    }
  }
  return [`${out}</${tag}>`, i];
}

/** An item with several lines: its first paragraph inline (tight list), the rest as blocks. */
function renderItemBody(body: string[]): string {
  const html = renderBlocks(body);
  // Unwrap a leading paragraph so tight items read as one line.
  return html.startsWith('<p>') ? html.replace(/^<p>([\s\S]*?)<\/p>/, '$1') : html;
}
