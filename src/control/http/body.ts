/**
 * Request bodies: read with a hard size limit (413 before buffering anything when
 * Content-Length already says too much), then parse as JSON or YAML with errors that
 * name the problem and where it is.
 */
import type { IncomingMessage } from 'node:http';
import { HexmeshError } from '../../errors/hexmesh-error.ts';
import { parseDocuments } from '../../config/load.ts';

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

/**
 * Parse a resource body: JSON (content-type application/json) or YAML (one or many
 * documents; YAML is a superset of JSON, so a body with no content type is parsed as YAML).
 * Returns the documents, a JSON array being many documents.
 */
export function parseResourceDocuments(req: IncomingMessage, buf: Buffer): unknown[] {
  const ct = req.headers['content-type'] ?? '';
  const docs = ct.includes('json') ? [parseJson(buf)] : parseDocuments(buf.toString('utf8'), 'request body');
  if (docs.length === 1 && Array.isArray(docs[0])) return docs[0] as unknown[];
  return docs;
}
