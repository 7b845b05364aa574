/**
 * Harness for the ported Gateway API Mesh conformance suite (kubernetes-sigs/gateway-api
 * `conformance/tests/mesh/`): the base manifests' namespace, Services and pods — `echo-v1`
 * and `echo-v2` in `gateway-conformance-mesh` (Service `echo` selects both), each a real echo
 * app behind its own real sidecar — and client sidecars standing for the `echo-v1` pod the
 * upstream suite execs into (one per namespace, for consumer routes).
 *
 * Each test applies its manifests to the client sidecars (`apply`), as `kubectl apply` would,
 * and checks upstream's `ExpectedResponse` with `expectResponse`, which compares the way
 * upstream's `conformance/utils/http` does: status, response headers, the request the backend
 * saw (path, host, method, headers with repeated lines joined by `,`), the backend that
 * answered (pod name prefix) and, for redirects, the Location's scheme/host/port/path.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { parseDuration } from '../../src/config/duration.ts';
import { parseProxyConfig } from '../../src/config/load.ts';
import { startHttpServer, startProxy, type RunningProxy } from '../support/mesh.ts';

export const MESH_NS = 'gateway-conformance-mesh';
export const CONSUMER_NS = 'gateway-conformance-mesh-consumer';

/** What the echo app answers: the request as it arrived (upstream's echo response fields). */
export interface Echoed {
  path: string;
  host: string;
  method: string;
  proto: string;
  /** Header name as received → one entry per field line. */
  headers: Record<string, string[]>;
  namespace: string;
  pod: string;
}

/**
 * An echo app: answers JSON describing the request; field lines are kept as they came. As
 * upstream's echo-basic, `X-Echo-Set-Header: Name:value,Name2:value2` sets response headers.
 * Every request is logged to `log` (upstream reads the pod's log to see mirrored requests).
 */
function echoApp(pod: string, namespace: string, log: Echoed[]): http.RequestListener {
  const attempts = new Map<string, number>();
  return (req, res) => {
    if (retrySimulation(req, res, attempts)) return;
    // As echo-basic: `?delay=1s` waits that long before answering.
    const delay = parseDuration(new URL(req.url ?? '/', 'http://echo').searchParams.get('delay') ?? '0') ?? 0;
    if (delay > 0) {
      const t = setTimeout(answer, delay);
      res.on('close', () => clearTimeout(t));
      return;
    }
    answer();
    function answer() {
      req.resume();
      req.on('end', () => {
        const headers: Record<string, string[]> = {};
        const raw = req.rawHeaders;
        for (let i = 0; i < raw.length; i += 2) (headers[raw[i]] ??= []).push(raw[i + 1]);
        const body: Echoed = {
          path: req.url ?? '',
          host: req.headers.host ?? '',
          method: req.method ?? '',
          proto: `HTTP/${req.httpVersion}`,
          headers,
          namespace,
          pod,
        };
        log.push(body);
        const set = req.headers['x-echo-set-header'];
        if (typeof set === 'string')
          for (const pair of set.split(',')) {
            const colon = pair.indexOf(':');
            if (colon > 0) res.setHeader(pair.slice(0, colon).trim(), pair.slice(colon + 1).trim());
          }
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(body));
      });
    }
  };
}

/**
 * Upstream echo-basic's retry simulation: a request with `uuid`, `responseCode`, `succeedAfter`
 * (and optionally `delayRetry`) in its query answers `responseCode` — after `delayRetry` — to the
 * first `succeedAfter` requests with that uuid, then 200. Returns false for other requests.
 */
function retrySimulation(req: http.IncomingMessage, res: http.ServerResponse, attempts: Map<string, number>) {
  const q = new URL(req.url ?? '/', 'http://echo').searchParams;
  const uuid = q.get('uuid');
  const code = Number(q.get('responseCode'));
  if (!uuid || !code) return false;
  req.resume();
  const n = (attempts.get(uuid) ?? 0) + 1;
  attempts.set(uuid, n);
  if (n > Number(q.get('succeedAfter') ?? 0)) {
    res.end('ok');
    return true;
  }
  const delay = parseDuration(q.get('delayRetry') ?? '0') ?? 0;
  const t = setTimeout(() => res.writeHead(code).end(`simulated ${code}`), delay);
  res.on('close', () => clearTimeout(t));
  return true;
}

/** Service ports of the base manifests that carry HTTP (https, tcp and grpc are not used here). */
const PORTS = [
  { name: 'http', port: 80, protocol: 'http' },
  { name: 'http-alt', port: 8080, protocol: 'http' },
];

export interface Pod {
  name: string;
  /** The pod's address as a mesh client dials it: its sidecar's inbound listener. */
  address: string;
  port: number;
}

type PodName = 'echo-v1' | 'echo-v2' | 'echo-v3';

export interface Mesh {
  /**
   * echo-v1 and echo-v2 as in the mesh base manifests; echo-v3 stands for the Gateway
   * profile's infra-backend-v3 (tests that name three backends map infra-backend-vN to echo-vN).
   */
  pods: Record<PodName, Pod>;
  /** Requests each pod's app received (its log), oldest first. */
  seen: Record<PodName, Echoed[]>;
  /** Client sidecars by namespace (the upstream suite's echo-v1 pod in that namespace). */
  clients: Record<string, RunningProxy>;
  /** Replace the routes every client sidecar has (kubectl apply of one test's manifests). */
  apply(resources: unknown[]): void;
  close(): Promise<void>;
}

export async function startMesh(): Promise<Mesh> {
  const closers: (() => Promise<unknown>)[] = [];
  const pods = {} as Mesh['pods'];
  const seen = { 'echo-v1': [], 'echo-v2': [], 'echo-v3': [] } as Mesh['seen'];
  try {
    for (const name of ['echo-v1', 'echo-v2', 'echo-v3'] as const) {
      const pod = `${name}-7c9d5b6f4-x8k2p`;
      const app = await startHttpServer(echoApp(pod, MESH_NS, seen[name]));
      closers.push(() => app.close());
      const sidecar = await startProxy({
        proxy: { service: name, namespace: MESH_NS, app: { host: '127.0.0.1', port: app.port } },
      });
      closers.unshift(() => sidecar.close());
      pods[name] = { name: pod, address: '127.0.0.1', port: sidecar.inboundPort };
    }
    // infra-backend-connection-error's unhealthy pod: its app resets every connection.
    const resetApp = net.createServer((socket) => socket.resetAndDestroy());
    await new Promise<void>((r) => resetApp.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise((r) => resetApp.close(r)));
    const resetSidecar = await startProxy({
      proxy: {
        service: 'infra-backend-connection-error',
        namespace: MESH_NS,
        app: { host: '127.0.0.1', port: (resetApp.address() as AddressInfo).port },
      },
    });
    closers.unshift(() => resetSidecar.close());
    const endpoint = (p: Pod) => ({ address: p.address, port: p.port });
    const services = [
      { name: 'echo', endpoints: [endpoint(pods['echo-v1']), endpoint(pods['echo-v2'])] },
      { name: 'echo-v1', endpoints: [endpoint(pods['echo-v1'])] },
      { name: 'echo-v2', endpoints: [endpoint(pods['echo-v2'])] },
      { name: 'echo-v3', endpoints: [endpoint(pods['echo-v3'])] },
      {
        // echo-v3 stands for its healthy pod (infra-backend-connection-error-healthy).
        name: 'infra-backend-connection-error',
        endpoints: [endpoint(pods['echo-v3']), { address: '127.0.0.1', port: resetSidecar.inboundPort }],
      },
    ].map((s) => ({ ...s, namespace: MESH_NS, ports: PORTS }));
    const docFor = (namespace: string, resources: unknown[]) => ({
      proxy: {
        service: 'echo-v1',
        namespace,
        outbound: { address: '127.0.0.1', port: 0 },
        inbound: { address: '127.0.0.1', port: 0 },
        admin: { address: '127.0.0.1', port: 0 },
        drainTimeout: '1s',
      },
      services,
      resources,
    });
    const clients: Record<string, RunningProxy> = {};
    for (const ns of [MESH_NS, CONSUMER_NS]) {
      const c = await startProxy(docFor(ns, []));
      closers.unshift(() => c.close());
      clients[ns] = c;
    }
    return {
      pods,
      seen,
      clients,
      apply(resources) {
        for (const [ns, c] of Object.entries(clients)) {
          const doc = docFor(ns, resources);
          // The listeners are bound already; the config keeps the addresses it started with.
          doc.proxy = { ...doc.proxy, ...addressesOf(c) };
          c.proxy.apply(parseProxyConfig(doc));
        }
      },
      async close() {
        for (const fn of closers) await fn().catch(() => {});
      },
    };
  } catch (err) {
    for (const fn of closers) await fn().catch(() => {});
    throw err;
  }
}

function addressesOf(c: RunningProxy) {
  const cfg = c.proxy.config.proxy;
  return { outbound: cfg.outbound, inbound: cfg.inbound, admin: cfg.admin };
}

/** A small YAML-free manifest helper: an HTTPRoute as in upstream's manifests. */
export function httpRoute(
  name: string,
  spec: Record<string, unknown>,
  namespace = MESH_NS,
): Record<string, unknown> {
  return {
    apiVersion: 'gateway.networking.k8s.io/v1',
    kind: 'HTTPRoute',
    metadata: { name, namespace },
    spec,
  };
}

/** Upstream's `http.Request` (the parts the mesh tests use). */
export interface Request {
  host?: string;
  method?: string;
  path?: string;
  headers?: Record<string, string>;
}

/** Upstream's `http.ExpectedResponse`. */
export interface ExpectedResponse {
  request: Request;
  /** Default: the request (as upstream: an unset expected request is the request sent). */
  expectedRequest?: { request?: Request; absentHeaders?: string[] };
  response?: { statusCode?: number; headers?: Record<string, string>; absentHeaders?: string[] };
  backend?: string;
  namespace?: string;
  redirectRequest?: { scheme?: string; host?: string; port?: string; path?: string };
}

export interface Captured {
  status: number;
  /** Response headers by lower-case name, repeated field lines joined by `,` (as upstream compares them). */
  headers: Record<string, string>;
  echoed: Echoed | undefined;
  text: string;
}

/** Send `req` through `client`'s outbound listener as the app would (Host names the service). */
export function send(client: RunningProxy, req: Request, agent?: http.Agent): Promise<Captured> {
  return new Promise((resolve, reject) => {
    const r = http.request(
      {
        host: '127.0.0.1',
        port: client.addr.outbound.port,
        method: req.method ?? 'GET',
        path: req.path ?? '/',
        headers: { ...req.headers, Host: req.headers?.Host ?? req.host ?? 'echo' },
        setHost: false,
        agent: agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          let echoed: Echoed | undefined;
          if ((res.headers['content-type'] ?? '').includes('json')) {
            try {
              echoed = JSON.parse(text) as Echoed;
            } catch {
              echoed = undefined;
            }
          }
          const headers: Record<string, string> = {};
          for (let i = 0; i < res.rawHeaders.length; i += 2) {
            const k = res.rawHeaders[i].toLowerCase();
            headers[k] =
              headers[k] === undefined ? res.rawHeaders[i + 1] : `${headers[k]},${res.rawHeaders[i + 1]}`;
          }
          resolve({ status: res.statusCode ?? 0, headers, echoed, text });
        });
        res.on('error', reject);
      },
    );
    r.on('error', reject);
    r.end();
  });
}

/** The values of header `name` (any case) as upstream reads them: field lines joined by `,`. */
function echoedHeader(e: Echoed, name: string): string | undefined {
  const lower = name.toLowerCase();
  const values: string[] = [];
  for (const [k, v] of Object.entries(e.headers)) if (k.toLowerCase() === lower) values.push(...v);
  return values.length ? values.join(',') : undefined;
}

/** Compare one round trip with `exp`; returns the mismatches (empty: as expected). */
export function compare(exp: ExpectedResponse, got: Captured): string[] {
  const problems: string[] = [];
  const status = exp.response?.statusCode ?? 200;
  if (got.status !== status) {
    const cause = got.headers['x-hexmesh-error']
      ? ` (x-hexmesh-error: ${got.headers['x-hexmesh-error']})`
      : '';
    return [`status ${got.status}${cause}, want ${status}: ${got.text.slice(0, 160)}`];
  }
  for (const [k, v] of Object.entries(exp.response?.headers ?? {})) {
    const joined = got.headers[k.toLowerCase()];
    if (joined !== v)
      problems.push(`response header ${k}: ${JSON.stringify(joined)}, want ${JSON.stringify(v)}`);
  }
  for (const k of exp.response?.absentHeaders ?? [])
    if (got.headers[k.toLowerCase()] !== undefined)
      problems.push(`response header ${k} present, want absent`);
  if (exp.redirectRequest) {
    const loc = got.headers.location;
    if (!loc) return [...problems, 'redirect without Location'];
    const u = new URL(loc, 'http://placeholder');
    const reqUrl = new URL(`http://${exp.request.host ?? 'echo'}${exp.request.path ?? '/'}`);
    const want = {
      scheme: exp.redirectRequest.scheme ?? 'http',
      host: exp.redirectRequest.host ?? reqUrl.hostname,
      path: exp.redirectRequest.path ?? reqUrl.pathname,
    };
    if (u.protocol !== `${want.scheme}:`)
      problems.push(`redirect scheme ${u.protocol}, want ${want.scheme} (${loc})`);
    if (u.hostname !== want.host) problems.push(`redirect host ${u.hostname}, want ${want.host} (${loc})`);
    if (u.pathname !== want.path) problems.push(`redirect path ${u.pathname}, want ${want.path} (${loc})`);
    if (exp.redirectRequest.port !== undefined && u.port !== exp.redirectRequest.port)
      problems.push(`redirect port ${JSON.stringify(u.port)}, want ${exp.redirectRequest.port} (${loc})`);
    return problems;
  }
  if (status !== 200) return problems;
  const e = got.echoed;
  if (!e) return [...problems, `no echo response: ${got.text.slice(0, 160)}`];
  const want = { ...exp.request, ...exp.expectedRequest?.request };
  if (exp.expectedRequest?.request?.headers === undefined) want.headers = exp.request.headers;
  const wantPath = want.path ?? '/';
  if (exp.expectedRequest?.request?.host !== undefined && e.host !== exp.expectedRequest.request.host)
    problems.push(`backend saw host ${e.host}, want ${exp.expectedRequest.request.host}`);
  if (e.path !== wantPath) problems.push(`backend saw path ${e.path}, want ${wantPath}`);
  if (want.method && e.method !== want.method)
    problems.push(`backend saw method ${e.method}, want ${want.method}`);
  for (const [k, v] of Object.entries(want.headers ?? {})) {
    if (k.toLowerCase() === 'host') continue;
    const actual = echoedHeader(e, k);
    if (actual !== v) problems.push(`backend saw ${k}: ${JSON.stringify(actual)}, want ${JSON.stringify(v)}`);
  }
  for (const k of exp.expectedRequest?.absentHeaders ?? [])
    if (echoedHeader(e, k) !== undefined) problems.push(`backend saw ${k}, want absent`);
  if (exp.backend && !e.pod.startsWith(exp.backend))
    problems.push(`answered by ${e.pod}, want ${exp.backend}`);
  if (exp.namespace && e.namespace !== exp.namespace)
    problems.push(`answered from namespace ${e.namespace}, want ${exp.namespace}`);
  return problems;
}

/**
 * Upstream's `AwaitConvergence`: `probe` must report no problem on `threshold` consecutive
 * probes (routes settle) within `timeoutMs`; otherwise fail with `what` and the last problems.
 */
export async function eventually(
  what: string,
  probe: () => Promise<string[]>,
  { threshold = 3, timeoutMs = 10_000 } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let ok = 0;
  let last: string[];
  for (;;) {
    last = await probe();
    ok = last.length === 0 ? ok + 1 : 0;
    if (ok >= threshold) return;
    if (Date.now() > deadline) break;
    if (last.length) await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`${what}: ${last.join('; ')}`);
}

/** Upstream's `MakeRequestAndExpectEventuallyConsistentResponse` (see {@link eventually}). */
export function expectResponse(
  client: RunningProxy,
  exp: ExpectedResponse,
  options?: { threshold?: number; timeoutMs?: number },
): Promise<void> {
  return eventually(
    describe(exp.request),
    async () => compare(exp, await send(client, exp.request)),
    options,
  );
}

/** Upstream's `GetTestCaseName`: `<index> request to '<host><path>'…`. */
export function caseName(exp: ExpectedResponse, i: number, name?: string): string {
  if (name) return name;
  return `${i} ${describe(exp.request)}${exp.backend ? ` should go to ${exp.backend}` : ''}${
    exp.response?.statusCode && exp.response.statusCode !== 200
      ? ` should receive a ${exp.response.statusCode}`
      : ''
  }`;
}

function describe(r: Request): string {
  const headers = r.headers ? ` with headers ${JSON.stringify(r.headers)}` : '';
  return `request to '${r.host ?? 'echo'}${r.path ?? '/'}'${headers}`;
}
