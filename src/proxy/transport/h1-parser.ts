/**
 * Node's own HTTP/1.1 parser: the llhttp binding node:http parses every message with, in its
 * strict mode (no lenient flag: the checks that stop response smuggling — both Content-Length
 * and Transfer-Encoding, bad chunk sizes, obs-fold, bare CR or LF — stay on). Reached through
 * `_http_common`, where node:http's client and server take it from.
 */
import { createRequire } from 'node:module';

/** One parser instance (C++ `Parser`), driven by `execute` with the callbacks set as indexed properties. */
export interface NodeHttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  /** Bytes parsed, or the parse error (`code` HPE_*, `reason`). */
  execute(data: Buffer): number | ParseError;
  /** End of input: completes a body read until close; an error when a message is cut short. */
  finish(): number | ParseError | undefined;
  close(): void;
  /** Read `handle` (a StreamBase) directly; `kOnExecute` is called after each read. */
  consume(handle: ConsumableHandle): void;
  unconsume(): void;
  [callback: number]: unknown;
}

/** A socket's native handle, as node:http's server checks it before `consume`. */
export interface ConsumableHandle {
  readonly isStreamBase?: boolean;
  _consumed?: boolean;
  /** net.Socket's record of whether the handle reads. */
  reading?: boolean;
  readStart(): number;
  readStop(): number;
}

export type ParseError = Error & { code?: string; reason?: string; bytesParsed?: number };

interface ParserConstructor {
  new (): NodeHttpParser;
  readonly REQUEST: number;
  readonly RESPONSE: number;
  readonly kOnMessageBegin: number;
  readonly kOnHeaders: number;
  readonly kOnHeadersComplete: number;
  readonly kOnBody: number;
  readonly kOnMessageComplete: number;
  readonly kOnExecute: number;
  readonly kLenientNone: number;
}

const common = createRequire(import.meta.url)('_http_common') as {
  HTTPParser: ParserConstructor;
  methods: readonly string[];
};

export const HTTPParser = common.HTTPParser;
/** Method names by the index the parser reports a request's method with. */
export const METHODS: readonly string[] = common.methods;

export const kOnMessageBegin = HTTPParser.kOnMessageBegin | 0;
export const kOnHeaders = HTTPParser.kOnHeaders | 0;
export const kOnHeadersComplete = HTTPParser.kOnHeadersComplete | 0;
export const kOnBody = HTTPParser.kOnBody | 0;
export const kOnMessageComplete = HTTPParser.kOnMessageComplete | 0;
export const kOnExecute = HTTPParser.kOnExecute | 0;

/** The async resource the parser reports its callbacks under (async_hooks); one for all. */
export const PARSER_RESOURCE = { type: 'hexmesh.h1-hop' };

/** Stop a consumed handle's reads (its reads go to the parser, so pausing the socket would not). */
export function stopReads(h: ConsumableHandle): void {
  if (h.reading === true) {
    h.reading = false;
    h.readStop();
  }
}

/** Restart a consumed handle's reads. */
export function startReads(h: ConsumableHandle): void {
  if (h.reading !== true) {
    h.reading = true;
    h.readStart();
  }
}
