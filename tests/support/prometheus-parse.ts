/**
 * A strict parser for the Prometheus text exposition format 0.0.4, for tests: every line must be
 * a HELP / TYPE / comment line or a valid sample of a declared family; histograms must have
 * cumulative `le` buckets ending in `+Inf` that equal their `_count`. It throws on the first
 * line that breaks a rule, naming the line.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help?: string;
  samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*';
const VALUE_RE = /^(?:[+-]?Inf|NaN|[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)$/;

function parseValue(s: string, where: string): number {
  if (!VALUE_RE.test(s)) throw new Error(`${where}: bad value "${s}"`);
  if (s === '+Inf' || s === 'Inf') return Number.POSITIVE_INFINITY;
  if (s === '-Inf') return Number.NEGATIVE_INFINITY;
  return Number(s);
}

/** Parses `{a="x",b="y\"z"}` starting at `i` (at the `{`); returns labels and the index after `}`. */
function parseLabels(line: string, i: number, where: string): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  let p = i + 1;
  const nameRe = new RegExp(`^${LABEL}`);
  while (line[p] !== '}') {
    const m = nameRe.exec(line.slice(p));
    if (!m) throw new Error(`${where}: bad label name at column ${p}`);
    const name = m[0];
    p += name.length;
    if (line[p] !== '=' || line[p + 1] !== '"') throw new Error(`${where}: expected ="…" after label ${name}`);
    p += 2;
    let value = '';
    for (;;) {
      const ch = line[p];
      if (ch === undefined) throw new Error(`${where}: unterminated label value`);
      if (ch === '"') break;
      if (ch === '\\') {
        const nx = line[p + 1];
        if (nx === '\\') value += '\\';
        else if (nx === '"') value += '"';
        else if (nx === 'n') value += '\n';
        else throw new Error(`${where}: bad escape \\${nx ?? ''} in label ${name}`);
        p += 2;
        continue;
      }
      value += ch;
      p++;
    }
    p++;
    if (name in labels) throw new Error(`${where}: label ${name} repeated`);
    labels[name] = value;
    if (line[p] === ',') p++;
    else if (line[p] !== '}') throw new Error(`${where}: expected , or } after label ${name}`);
  }
  return { labels, end: p + 1 };
}

/** The family a sample name belongs to, given the declared types. */
function familyOf(name: string, families: Map<string, Family>): Family | undefined {
  const direct = families.get(name);
  if (direct) return direct;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue;
    const f = families.get(name.slice(0, -suffix.length));
    if (f && (f.type === 'histogram' || (f.type === 'summary' && suffix !== '_bucket'))) return f;
  }
  return undefined;
}

function checkHistogram(f: Family): void {
  const series = new Map<string, Sample[]>();
  const key = (l: Record<string, string>) =>
    JSON.stringify(
      Object.entries(l)
        .filter(([k]) => k !== 'le')
        .sort(),
    );
  for (const s of f.samples) {
    const k = key(s.labels);
    if (!series.has(k)) series.set(k, []);
    series.get(k)!.push(s);
  }
  for (const [k, samples] of series) {
    const buckets = samples.filter((s) => s.name === `${f.name}_bucket`);
    const count = samples.find((s) => s.name === `${f.name}_count`);
    const sum = samples.find((s) => s.name === `${f.name}_sum`);
    if (!count || !sum || buckets.length === 0) throw new Error(`${f.name}${k}: histogram needs _bucket, _sum and _count`);
    let prevLe = Number.NEGATIVE_INFINITY;
    let prev = 0;
    for (const b of buckets) {
      if (b.labels.le === undefined) throw new Error(`${f.name}${k}: bucket without le`);
      const le = parseValue(b.labels.le, `${f.name} le`);
      if (!(le > prevLe)) throw new Error(`${f.name}${k}: le not increasing`);
      if (b.value < prev) throw new Error(`${f.name}${k}: buckets not cumulative`);
      prevLe = le;
      prev = b.value;
    }
    if (prevLe !== Number.POSITIVE_INFINITY) throw new Error(`${f.name}${k}: last bucket is not le="+Inf"`);
    if (prev !== count.value) throw new Error(`${f.name}${k}: +Inf bucket ${prev} != _count ${count.value}`);
  }
}

/** Parses an exposition; throws on any line that is not valid 0.0.4. */
export function parsePrometheus(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  if (text.length > 0 && !text.endsWith('\n')) throw new Error('exposition must end with a newline');
  const lines = text.split('\n');
  lines.pop();
  const helpRe = new RegExp(`^# HELP (${NAME}) (.*)$`);
  const typeRe = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);
  const nameRe = new RegExp(`^${NAME}`);
  const seenSeries = new Set<string>();
  lines.forEach((line, n) => {
    const where = `line ${n + 1} "${line}"`;
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      const h = helpRe.exec(line);
      if (h) {
        const f = families.get(h[1]);
        if (f?.help !== undefined) throw new Error(`${where}: second HELP`);
        if (/\\[^\\n]/.test(h[2].replace(/\\\\/g, ''))) throw new Error(`${where}: bad escape in HELP`);
        if (f) f.help = h[2];
        else families.set(h[1], { name: h[1], type: 'untyped', help: h[2], samples: [] });
        return;
      }
      const t = typeRe.exec(line);
      if (t) {
        const f = families.get(t[1]);
        if (f && (f.samples.length > 0 || f.type !== 'untyped')) throw new Error(`${where}: TYPE after samples or twice`);
        if (f) f.type = t[2] as Family['type'];
        else families.set(t[1], { name: t[1], type: t[2] as Family['type'], samples: [] });
        return;
      }
      if (/^# (HELP|TYPE)\b/.test(line)) throw new Error(`${where}: malformed HELP/TYPE`);
      return; // a plain comment
    }
    const m = nameRe.exec(line);
    if (!m) throw new Error(`${where}: not a sample`);
    const name = m[0];
    let p = name.length;
    let labels: Record<string, string> = {};
    if (line[p] === '{') ({ labels, end: p } = parseLabels(line, p, where));
    if (line[p] !== ' ') throw new Error(`${where}: expected a space before the value`);
    const rest = line.slice(p + 1).split(' ');
    if (rest.length < 1 || rest.length > 2) throw new Error(`${where}: expected value [timestamp]`);
    const value = parseValue(rest[0], where);
    if (rest.length === 2 && !/^-?\d+$/.test(rest[1])) throw new Error(`${where}: bad timestamp`);
    const f = familyOf(name, families);
    if (!f) throw new Error(`${where}: sample of an undeclared family`);
    if ((f.type === 'histogram') !== (name !== f.name)) throw new Error(`${where}: sample name does not fit a ${f.type}`);
    if (f.type === 'counter' && !(value >= 0)) throw new Error(`${where}: negative counter`);
    const id = name + JSON.stringify(Object.entries(labels).sort());
    if (seenSeries.has(id)) throw new Error(`${where}: duplicate series`);
    seenSeries.add(id);
    f.samples.push({ name, labels, value });
  });
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return families;
}

/** The value of the one sample called `name` whose labels include `labels` (throws if not exactly one). */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const all = [...families.values()].flatMap((f) => f.samples);
  const hits = all.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (hits.length !== 1) throw new Error(`expected one sample ${name}${JSON.stringify(labels)}, found ${hits.length}`);
  return hits[0].value;
}
