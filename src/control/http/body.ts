/**
 * Request bodies: read with a hard size limit (413 before buffering anything when
 * Content-Length already says too much), then parse as JSON or YAML with errors that
 * name the problem and where it is.
 */
import type { IncomingMessage } from 'node:http';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { ConfigError, parseDocuments } from '../../config/load.ts';

/** Read the whole body, failing with HEXMESH_ERR_BODY_TOO_LARGE past `limit` bytes. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge(limit);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

function tooLarge(limit: number): HexmeshError {
  return new HexmeshError(
    'HEXMESH_ERR_BODY_TOO_LARGE',
    `request body larger than the limit of ${limit} bytes`,
    { context: { limit } },
  );
}

/** True if the request says its body is YAML. */
export function isYaml(req: IncomingMessage): boolean {
  const ct = req.headers['content-type'] ?? '';
  return ct.includes('yaml');
}

/** Parse a JSON body; garbage → 400 naming the parse error. An empty body is an error too. */
export function parseJson(buf: Buffer, what = 'request body'): unknown {
  const text = buf.toString('utf8');
  if (!text.trim()) throw new HexmeshError('HEXMESH_ERR_BAD_REQUEST', `${what} is empty: expected JSON`);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new HexmeshError('HEXMESH_ERR_BAD_REQUEST', `${what} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Deeper than any resource by far (a CRD schema counts under 50); far below where the YAML parser overflows its stack (~800). */
export const MAX_DOCUMENT_DEPTH = 100;

/**
 * How deep `text`'s collections nest, counted without parsing: open flow brackets (`[`, `{`)
 * outside quotes and comments, plus, at each line's start, the indentation levels open and
 * the block indicators (`- `, `? `, `: `) before the content. It may count more than a parser
 * would (a bracket inside a block scalar), never less; it stops counting past `limit`.
 */
export function nestingDepth(text: string, limit = MAX_DOCUMENT_DEPTH): number {
  let max = 0;
  let flow = 0;
  const indents: number[] = [];
  let i = 0;
  while (i < text.length && max <= limit) {
    // A line's start: its indentation, then block indicators opening nested collections.
    const start = i;
    while (text[i] === ' ') i++;
    const col = i - start;
    while (indents.length && indents[indents.length - 1] >= col) indents.pop();
    indents.push(col);
    let block = indents.length;
    while ('-?:'.includes(text[i] ?? 'x') && (text[i + 1] === ' ' || text[i + 1] === '\n')) {
      i += 2;
      block++;
    }
    max = Math.max(max, block + flow);
    // The rest of the line.
    let quote = '';
    for (; i < text.length && text[i] !== '\n'; i++) {
      const c = text[i];
      if (quote) {
        if (c === quote) quote = '';
        else if (c === '\\' && quote === '"') i++;
      } else if (c === '"' || c === "'") quote = c;
      else if (c === '#' && (i === 0 || text[i - 1] === ' ' || text[i - 1] === '\t')) break;
      else if (c === '[' || c === '{') max = Math.max(max, block + ++flow);
      else if ((c === ']' || c === '}') && flow > 0) flow--;
    }
    while (i < text.length && text[i] !== '\n') i++;
    i++;
  }
  return max;
}

/**
 * Parse a resource body: JSON (content-type application/json) or YAML (one or many
 * documents; YAML is a superset of JSON, so a body with no content type is parsed as YAML).
 * Returns the documents, a JSON array being many documents. A body nested deeper than
 * MAX_DOCUMENT_DEPTH is refused before parsing: the YAML parser recurses, and two 100 KB
 * bodies of `[[[…` aborted the process (V8 out of memory after a caught stack overflow).
 */
export function parseResourceDocuments(req: IncomingMessage, buf: Buffer): unknown[] {
  const ct = req.headers['content-type'] ?? '';
  const text = buf.toString('utf8');
  if (nestingDepth(text) > MAX_DOCUMENT_DEPTH)
    throw new HexmeshError(
      'HEXMESH_ERR_BAD_REQUEST',
      `request body is nested deeper than ${MAX_DOCUMENT_DEPTH} levels: no resource is; refused before parsing`,
    );
  const docs = ct.includes('json') ? [parseJson(buf)] : parseYaml(text);
  if (docs.length === 1 && Array.isArray(docs[0])) return docs[0] as unknown[];
  return docs;
}

/** YAML documents; what the parser throws besides its problems (an alias bomb: "Excessive alias count") is the client's: 400. */
function parseYaml(text: string): unknown[] {
  try {
    return parseDocuments(text, 'request body');
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new HexmeshError('HEXMESH_ERR_BAD_REQUEST', `request body: ${(e as Error).message}`, { cause: e });
  }
}
