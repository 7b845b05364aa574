/**
 * The head of an HTTP/1.1 request on the hop: request line, `host` first, the end-to-end
 * headers (spelled as they arrived, core/headers.ts), then the framing this transport owns.
 * Built as one latin1 string so a bodiless request is one socket write.
 *
 * Everything that reaches here was parsed by a strict parser or validated with the config,
 * but a layer may add headers: each name must be a token and each value free of CR, LF and
 * NUL (the checks node:http's client makes), or the request is refused before a byte is sent —
 * no header can split the message.
 */
import type { HeaderMap } from '../core/dispatch.ts';

/** RFC 9110 §5.6.2 token. */
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Field values: HTAB, visible ASCII, space and obs-text (node:http's `checkInvalidHeaderChar`). */
export const BAD_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
/** Request targets: visible ASCII and obs-text, no space or control character. */
const BAD_TARGET = /[^\x21-\x7e\x80-\xff]/;

/** Headers this transport writes itself, or that must not cross the hop. */
const OWN = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'expect',
  'proxy-connection',
]);

/** Methods whose request carries a body, so an empty one is announced (`content-length: 0`). */
const EXPECTS_BODY = new Set(['POST', 'PUT', 'PATCH']);

export class InvalidRequestHeadError extends Error {
  readonly code = 'ERR_INVALID_CHAR';
}

/**
 * How the body is framed: `-1` chunked, otherwise its length (0 without a body). A body
 * without a declared length is chunked; a declared length is kept and enforced by the writer.
 */
export function bodyFraming(headers: HeaderMap, hasBody: boolean): number {
  const declared = headers['content-length'];
  if (!hasBody) return 0;
  if (declared === undefined) return -1;
  const n = Number(Array.isArray(declared) ? declared[0] : declared);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new InvalidRequestHeadError(`invalid content-length ${declared}`);
  return n;
}

/**
 * The request head. `framing` from {@link bodyFraming}; `names` maps lower-case names to the
 * spelling the request arrived with.
 */
export function requestHead(
  method: string,
  path: string,
  authority: string,
  headers: HeaderMap,
  names: ReadonlyMap<string, string> | undefined,
  framing: number,
  hasBody: boolean,
): string {
  if (!TOKEN.test(method)) throw new InvalidRequestHeadError(`invalid method ${JSON.stringify(method)}`);
  if (path.length === 0 || BAD_TARGET.test(path))
    throw new InvalidRequestHeadError(`invalid request target ${JSON.stringify(path)}`);
  if (BAD_VALUE.test(authority)) throw new InvalidRequestHeadError('invalid host');
  let head = `${method} ${path} HTTP/1.1\r\nhost: ${authority}\r\nconnection: keep-alive\r\n`;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || OWN.has(name)) continue;
    if (!TOKEN.test(name)) throw new InvalidRequestHeadError(`invalid header name ${JSON.stringify(name)}`);
    const spelled = names?.get(name) ?? name;
    if (typeof value === 'string') {
      if (BAD_VALUE.test(value)) throw new InvalidRequestHeadError(`invalid value of header ${name}`);
      head += `${spelled}: ${value}\r\n`;
    } else
      for (const v of value) {
        if (BAD_VALUE.test(v)) throw new InvalidRequestHeadError(`invalid value of header ${name}`);
        head += `${spelled}: ${v}\r\n`;
      }
  }
  if (framing === -1) head += 'transfer-encoding: chunked\r\n';
  else if (hasBody || framing > 0 || EXPECTS_BODY.has(method) || headers['content-length'] !== undefined)
    head += `content-length: ${framing}\r\n`;
  return head + '\r\n';
}
