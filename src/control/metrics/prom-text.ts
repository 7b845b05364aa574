/**
 * A small parser for the Prometheus text exposition format (version 0.0.4), enough for
 * what a scraper needs: every sample line as name, labels and value. `# HELP` / `# TYPE`
 * and other comments are skipped; timestamps are ignored (the scrape time is what counts).
 *
 * Written here rather than taken from npm: the one package that fits
 * (parse-prometheus-text-format) is unmaintained and builds whole metric-family objects,
 * which the collector would throw away. This parser walks the text once, with no regex.
 */

/** One sample: `name{labels} value`. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** A malformed line, with its 1-based number. */
export class PromTextError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`line ${line}: ${message}`);
    this.name = 'PromTextError';
  }
}

/**
 * Call `onSample` for every sample in `text`. `wanted`, when given, is asked with the
 * metric name before the labels are parsed, so uninteresting families cost little.
 * Throws PromTextError on a malformed line.
 */
export function parsePromText(
  text: string,
  onSample: (s: Sample) => void,
  wanted?: (name: string) => boolean,
): void {
  let lineNo = 0;
  let pos = 0;
  const n = text.length;
  while (pos < n) {
    lineNo++;
    let end = text.indexOf('\n', pos);
    if (end < 0) end = n;
    const line = text.slice(pos, end);
    pos = end + 1;
    const s = parseLine(line, lineNo, wanted);
    if (s) onSample(s);
  }
}

/** All samples of `text` as an array (tests, small inputs). */
export function parseAll(text: string): Sample[] {
  const out: Sample[] = [];
  parsePromText(text, (s) => out.push(s));
  return out;
}

const isNameStart = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 58; // A-Z a-z _ :
const isNameChar = (c: number) => isNameStart(c) || (c >= 48 && c <= 57);
const isSpace = (c: number) => c === 32 || c === 9;

function parseLine(line: string, lineNo: number, wanted?: (name: string) => boolean): Sample | undefined {
  let i = 0;
  const n = line.length;
  while (i < n && isSpace(line.charCodeAt(i))) i++;
  if (i === n || line.charCodeAt(i) === 35 /* # */) return undefined;
  if (line.charCodeAt(n - 1) === 13) return parseLine(line.slice(0, -1), lineNo, wanted); // CRLF
  const start = i;
  if (!isNameStart(line.charCodeAt(i))) throw new PromTextError(lineNo, 'expected a metric name');
  while (i < n && isNameChar(line.charCodeAt(i))) i++;
  const name = line.slice(start, i);
  if (wanted && !wanted(name)) return undefined;
  const labels: Record<string, string> = {};
  if (line.charCodeAt(i) === 123 /* { */) {
    i++;
    for (;;) {
      while (i < n && isSpace(line.charCodeAt(i))) i++;
      if (line.charCodeAt(i) === 125 /* } */) {
        i++;
        break;
      }
      const ls = i;
      if (!isNameStart(line.charCodeAt(i)) || line.charCodeAt(i) === 58)
        throw new PromTextError(lineNo, `expected a label name in ${name}`);
      while (i < n && isNameChar(line.charCodeAt(i)) && line.charCodeAt(i) !== 58) i++;
      const label = line.slice(ls, i);
      while (i < n && isSpace(line.charCodeAt(i))) i++;
      if (line.charCodeAt(i) !== 61 /* = */)
        throw new PromTextError(lineNo, `expected = after label ${label}`);
      i++;
      while (i < n && isSpace(line.charCodeAt(i))) i++;
      if (line.charCodeAt(i) !== 34 /* " */)
        throw new PromTextError(lineNo, `expected a quoted value for label ${label}`);
      i++;
      let value = '';
      let chunk = i;
      for (;;) {
        if (i >= n) throw new PromTextError(lineNo, `unterminated value of label ${label}`);
        const c = line.charCodeAt(i);
        if (c === 34) break;
        if (c === 92 /* \ */) {
          value += line.slice(chunk, i);
          const e = line.charCodeAt(i + 1);
          if (e === 110) value += '\n';
          else if (e === 92) value += '\\';
          else if (e === 34) value += '"';
          else throw new PromTextError(lineNo, `bad escape in label ${label}`);
          i += 2;
          chunk = i;
          continue;
        }
        i++;
      }
      value += line.slice(chunk, i);
      i++;
      if (Object.hasOwn(labels, label)) throw new PromTextError(lineNo, `duplicate label ${label}`);
      labels[label] = value;
      while (i < n && isSpace(line.charCodeAt(i))) i++;
      const c = line.charCodeAt(i);
      if (c === 44 /* , */) i++;
      else if (c !== 125) throw new PromTextError(lineNo, `expected , or } after label ${label}`);
    }
  }
  if (i >= n || !isSpace(line.charCodeAt(i)))
    throw new PromTextError(lineNo, `expected a value after ${name}`);
  while (i < n && isSpace(line.charCodeAt(i))) i++;
  const vs = i;
  while (i < n && !isSpace(line.charCodeAt(i))) i++;
  const value = parseValue(line.slice(vs, i));
  if (value === undefined) throw new PromTextError(lineNo, `bad value ${JSON.stringify(line.slice(vs, i))}`);
  // An optional timestamp may follow; anything else is an error.
  while (i < n && isSpace(line.charCodeAt(i))) i++;
  if (i < n) {
    const ts = line.slice(i).trimEnd();
    if (!/^-?\d+$/.test(ts)) throw new PromTextError(lineNo, `bad timestamp ${JSON.stringify(ts)}`);
  }
  return { name, labels, value };
}

function parseValue(s: string): number | undefined {
  if (s === '') return undefined;
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  const v = Number(s);
  return Number.isNaN(v) ? undefined : v;
}
