import { describe, expect, it } from 'vitest';
import { escapeHtml, renderMarkdown, safeHref } from '../../web/src/markdown.ts';
import { Rng } from '../support/random.ts';

/**
 * A strict reader of the renderer's output: every tag must be one of the allowed forms, tags must
 * nest properly, text may only hold the five entities. Returns the text content with link hrefs
 * and code languages spliced in (to check that nothing of the input is lost).
 */
function checkSafe(html: string): string {
  const OPEN = /^<(p|strong|em|code|pre|ul|li|h3|h4|h5|h6)>$/;
  const CLOSE = /^<\/(p|strong|em|code|pre|ul|ol|li|a|h3|h4|h5|h6)>$/;
  const OL = /^<ol(?: start="\d+")?>$/;
  const CODE_LANG = /^<code class="language-([A-Za-z0-9_+-]+)">$/;
  const LINK = /^<a href="(https?:\/\/[^"<>\s]*)" rel="noopener noreferrer" target="_blank">$/;
  const stack: { tag: string; after?: string }[] = [];
  let text = '';
  let i = 0;
  while (i < html.length) {
    const lt = html.indexOf('<', i);
    const chunk = html.slice(i, lt === -1 ? html.length : lt);
    if (/[>"']/.test(chunk)) throw new Error(`raw > " or ' in text: ${JSON.stringify(chunk)}`);
    const ents = chunk.match(/&[^;]*;?/g) ?? [];
    for (const e of ents) if (!['&amp;', '&lt;', '&gt;', '&quot;', '&#39;'].includes(e)) throw new Error(`bad entity ${e}`);
    text += chunk.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&');
    if (lt === -1) break;
    const gt = html.indexOf('>', lt);
    if (gt === -1) throw new Error('unterminated tag');
    const tag = html.slice(lt, gt + 1);
    let m: RegExpExecArray | null;
    if (tag === '<br>' || tag === '<hr>') {
      // void
    } else if ((m = OPEN.exec(tag))) stack.push({ tag: m[1]! });
    else if (OL.test(tag)) stack.push({ tag: 'ol' });
    else if ((m = CODE_LANG.exec(tag))) {
      stack.push({ tag: 'code' });
      text += m[1];
    } else if ((m = LINK.exec(tag))) {
      const href = m[1]!.replace(/&amp;/g, '&').replace(/&#39;/g, "'");
      expect(safeHref(href)).toBe(href);
      stack.push({ tag: 'a', after: href });
    } else if ((m = CLOSE.exec(tag))) {
      const top = stack.pop();
      if (top?.tag !== m[1]) throw new Error(`mis-nested ${tag} (open: ${top?.tag})`);
      if (top.after) text += top.after;
    } else throw new Error(`tag not allowed: ${tag}`);
    i = gt + 1;
  }
  if (stack.length) throw new Error(`unclosed ${stack.map((s) => s.tag)}`);
  return text;
}

const letters = (s: string) => s.replace(/[^A-Za-z]/g, '');

describe('renderMarkdown: what it renders', () => {
  it('paragraphs with soft line breaks', () => {
    expect(renderMarkdown('one\ntwo\n\nthree')).toBe('<p>one<br>two</p><p>three</p>');
    expect(renderMarkdown('a\r\nb')).toBe('<p>a<br>b</p>');
    expect(renderMarkdown('')).toBe('');
  });

  it('bold, italic, code spans and escapes', () => {
    expect(renderMarkdown('**b** and *i* and __B__ and _I_')).toBe('<p><strong>b</strong> and <em>i</em> and <strong>B</strong> and <em>I</em></p>');
    expect(renderMarkdown('***both***')).toBe('<p><strong><em>both</em></strong></p>');
    expect(renderMarkdown('*it has **bold** inside*')).toBe('<p><em>it has <strong>bold</strong> inside</em></p>');
    expect(renderMarkdown('use `a < b` and ``x ` y``')).toBe('<p>use <code>a &lt; b</code> and <code>x ` y</code></p>');
    expect(renderMarkdown('\\*not em\\* and \\`no code\\`')).toBe('<p>*not em* and `no code`</p>');
    expect(renderMarkdown('snake_case_name and 2 * 3 * 4')).toBe('<p>snake_case_name and 2 * 3 * 4</p>');
    expect(renderMarkdown('**unclosed bold')).toBe('<p>**unclosed bold</p>');
    expect(renderMarkdown('*`*` is a star*')).toBe('<p><em><code>*</code> is a star</em></p>');
  });

  it('fenced code blocks, with a language, and unclosed while streaming', () => {
    expect(renderMarkdown('```js\nconst a = "<b>";\n```\nafter')).toBe('<pre><code class="language-js">const a = &quot;&lt;b&gt;&quot;;</code></pre><p>after</p>');
    expect(renderMarkdown('~~~\n**not bold**\n~~~')).toBe('<pre><code>**not bold**</code></pre>');
    expect(renderMarkdown('text\n```py\nprint(1)')).toBe('<p>text</p><pre><code class="language-py">print(1)</code></pre>');
    expect(renderMarkdown('````\n```\ninner\n```\n````')).toBe('<pre><code>```\ninner\n```</code></pre>');
  });

  it('lists: unordered, ordered with a start, nested, with continuation lines', () => {
    expect(renderMarkdown('- a\n- b')).toBe('<ul><li>a</li><li>b</li></ul>');
    expect(renderMarkdown('3. c\n4. d')).toBe('<ol start="3"><li>c</li><li>d</li></ol>');
    expect(renderMarkdown('1. top\n   - inner *x*\n2. next')).toBe('<ol><li>top<ul><li>inner <em>x</em></li></ul></li><li>next</li></ol>');
    expect(renderMarkdown('* one\n  more\n* two')).toBe('<ul><li>one<br>more</li><li>two</li></ul>');
    expect(renderMarkdown('intro\n- a\n- b\n\nafter')).toBe('<p>intro</p><ul><li>a</li><li>b</li></ul><p>after</p>');
  });

  it('headings and rules', () => {
    expect(renderMarkdown('# Title\n## Sub ##\ntext')).toBe('<h3>Title</h3><h4>Sub</h4><p>text</p>');
    expect(renderMarkdown('# C#')).toBe('<h3>C#</h3>');
    expect(renderMarkdown('a\n\n---\n\nb')).toBe('<p>a</p><hr><p>b</p>');
  });

  it('links: http(s) only, everything else stays text', () => {
    expect(renderMarkdown('[site](https://example.com/a?b=1&c=2)')).toBe(
      '<p><a href="https://example.com/a?b=1&amp;c=2" rel="noopener noreferrer" target="_blank">site</a></p>',
    );
    expect(renderMarkdown('[**b**](http://x.org/(paren))')).toBe(
      '<p><a href="http://x.org/(paren)" rel="noopener noreferrer" target="_blank"><strong>b</strong></a></p>',
    );
    expect(renderMarkdown('[x](javascript:alert(1))')).toBe('<p>[x](javascript:alert(1))</p>');
    expect(renderMarkdown('[x](/relative)')).toBe('<p>[x](/relative)</p>');
    expect(renderMarkdown('[no [nested](https://a.b)](https://c.d)')).toContain('href="https://c.d"');
    expect(renderMarkdown('[no [nested](https://a.b)](https://c.d)')).not.toContain('href="https://a.b"');
  });
});

describe('renderMarkdown: injection', () => {
  const PAYLOADS = [
    '<script>alert(1)</script>',
    '<img src=x onerror=alert(1)>',
    '<a href="javascript:alert(1)">x</a>',
    '[x](javascript:alert(1))',
    '[x](JaVaScRiPt:alert(1))',
    '[x](  javascript:alert(1))',
    '[x](java\tscript:alert(1))',
    '[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)',
    '[x](vbscript:msgbox(1))',
    '[x](https://a.com" onmouseover="alert(1))',
    "[x](https://a.com' onmouseover='alert(1))",
    '[x](https://a.com"><script>alert(1)</script>)',
    '[x](https://a.com/\u0000)',
    '[<img src=x onerror=alert(1)>](https://ok.com)',
    '`<script>alert(1)</script>`',
    '```"><script>alert(1)</script>\ncode\n```',
    '```js" onload="alert(1)\ncode\n```',
    '```\n</code></pre><script>alert(1)</script>\n```',
    '**<b onclick=alert(1)>bold</b>**',
    '*<svg/onload=alert(1)>*',
    '# <iframe src=javascript:alert(1)>',
    '- <style>body{display:none}</style>',
    '1. <math><mi xlink:href="javascript:alert(1)">x</mi></math>',
    '&lt;script&gt; &amp; &#x3C;script&#x3E;',
    '<!-- comment --> <![CDATA[ x ]]>',
    '\\<script>alert(1)\\</script>',
  ];

  it.each(PAYLOADS)('renders %j as text only', (p) => {
    const html = renderMarkdown(p);
    checkSafe(html);
    expect(html).not.toMatch(/<(script|img|iframe|svg|style|math|b |!--)/i);
    expect(html).not.toMatch(/<a [^>]*href="(?!https?:)/i);
    expect(html).not.toMatch(/<[^>]*\son\w+=/i);
  });

  it('escapes every special character of text', () => {
    expect(escapeHtml(`<>&"'`)).toBe('&lt;&gt;&amp;&quot;&#39;');
    expect(renderMarkdown(`<>&"'`)).toBe('<p>&lt;&gt;&amp;&quot;&#39;</p>');
  });

  it('safeHref accepts only absolute http(s) URLs without quotes, spaces or controls', () => {
    expect(safeHref('https://example.com/x')).toBe('https://example.com/x');
    expect(safeHref('HTTP://EXAMPLE.COM')).toBe('HTTP://EXAMPLE.COM');
    for (const bad of ['javascript:alert(1)', '//evil.com', '/x', 'https://a.com/"x', 'https://a b', 'http://a\nb', 'ftp://x', 'https://', 'data:,x']) {
      expect(safeHref(bad), bad).toBeNull();
    }
  });

  it('random soups of Markdown and HTML stay safe, well nested, and lose no letters', () => {
    const rng = new Rng(7);
    const TOKENS = [
      '*', '**', '_', '__', '`', '``', '```\n', '```py\n', '~~~\n', '\n', '\n\n', ' ', '  ', '   ', '- ', '* ', '1. ', '2) ', '# ', '### ',
      '[', ']', '(', ')', '](', 'https://ex.com/p', 'http://h.io', 'javascript:alert', 'data:x', '<', '>', '&', '"', "'", '\\', '\t',
      '<script>', '</p>', 'onerror=', 'abc', 'Def', 'x', 'word', '---\n', '\r\n', '&amp;', '&#39;', '%22',
    ];
    for (let n = 0; n < 3000; n++) {
      let src = '';
      const len = rng.int(1, 40);
      for (let k = 0; k < len; k++) src += rng.pick(TOKENS);
      let html: string;
      let text: string;
      try {
        html = renderMarkdown(src);
        text = checkSafe(html);
      } catch (e) {
        throw new Error(`input ${JSON.stringify(src)}: ${(e as Error).message}`);
      }
      expect(letters(text), JSON.stringify(src)).toBe(letters(src));
    }
  });

  it('stays linear on adversarial delimiter runs', () => {
    const src = `${'*a '.repeat(20000)}${'_b '.repeat(20000)}${'`'.repeat(5000)}${'['.repeat(5000)}`;
    const t0 = performance.now();
    checkSafe(renderMarkdown(src));
    expect(performance.now() - t0).toBeLessThan(3000);
  });
});
