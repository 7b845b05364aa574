/**
 * Test support: the Echo gRPC service of test/fixtures/echo.proto (unary, server-, client- and
 * bidi-streaming), served by @grpc/grpc-js on a free loopback port.
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export interface EchoRequest {
  message: string;
  count?: number;
  delayMs?: number;
  failCode?: number;
}
export interface EchoReply {
  message: string;
  index: number;
  deadlineMs: string | number;
}

const protoPath = fileURLToPath(new URL('../fixtures/echo.proto', import.meta.url));
const def = protoLoader.loadSync(protoPath, { longs: Number, defaults: true });
/** The generated client constructor of `hexmesh.test.Echo`. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const EchoClient = (grpc.loadPackageDefinition(def) as any).hexmesh.test
  .Echo as grpc.ServiceClientConstructor;

/** What the server saw, for assertions about propagation. */
export interface EchoObservations {
  /** Calls whose server side was cancelled (deadline or client cancel reached the server). */
  cancelled: number;
  lastMetadata?: grpc.Metadata;
}

function deadlineMs(call: { getDeadline(): grpc.Deadline }): number {
  const d = call.getDeadline();
  const ms = d instanceof Date ? d.getTime() : d;
  return Number.isFinite(ms) ? Math.round(ms - Date.now()) : -1;
}

/** Start the Echo server; `failTrailer` metadata is attached to every failing unary call. */
export async function startEchoServer(): Promise<{
  port: number;
  seen: EchoObservations;
  close(): void;
}> {
  const seen: EchoObservations = { cancelled: 0 };
  const server = new grpc.Server();
  server.addService(EchoClient.service, {
    Unary(call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) {
      seen.lastMetadata = call.metadata;
      // Echo request metadata back as initial metadata (custom keys only).
      const md = new grpc.Metadata();
      for (const [k, v] of Object.entries(call.metadata.getMap()))
        if (k.startsWith('x-')) md.set(k, v as string);
      call.sendMetadata(md);
      call.on('cancelled', () => seen.cancelled++);
      const reply = () => {
        const r = call.request;
        if (r.failCode) {
          const trailer = new grpc.Metadata();
          trailer.set('x-custom-trailer', 'trailer-value');
          trailer.set('x-error-bin', Buffer.from([0, 1, 2, 255]));
          cb({ code: r.failCode, details: `failed: ${r.message}`, metadata: trailer });
          return;
        }
        cb(null, { message: r.message, index: 0, deadlineMs: deadlineMs(call) });
      };
      if (call.request.delayMs) setTimeout(reply, call.request.delayMs);
      else reply();
    },
    ServerStream(call: grpc.ServerWritableStream<EchoRequest, EchoReply>) {
      const n = call.request.count ?? 0;
      for (let i = 0; i < n; i++) call.write({ message: call.request.message, index: i, deadlineMs: -1 });
      const t = new grpc.Metadata();
      t.set('x-sent', String(n));
      call.end(t);
    },
    ClientStream(call: grpc.ServerReadableStream<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) {
      const parts: string[] = [];
      call.on('data', (r: EchoRequest) => parts.push(r.message));
      call.on('end', () => cb(null, { message: parts.join(','), index: parts.length, deadlineMs: -1 }));
    },
    Bidi(call: grpc.ServerDuplexStream<EchoRequest, EchoReply>) {
      let i = 0;
      call.on('data', (r: EchoRequest) =>
        call.write({ message: `echo:${r.message}`, index: i++, deadlineMs: -1 }),
      );
      call.on('end', () => call.end());
    },
  });
  const port = await new Promise<number>((res, rej) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))),
  );
  return { port, seen, close: () => server.forceShutdown() };
}

/** A client that reaches `service` through the sidecar at `port` (`:authority` routes it). */
export function echoClient(
  port: number,
  service: string,
): grpc.Client & Record<string, grpc.MethodDefinition<unknown, unknown> & ((...a: unknown[]) => unknown)> {
  return new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    'grpc.default_authority': service,
  }) as never;
}
