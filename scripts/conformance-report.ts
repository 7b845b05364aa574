/**
 * Run the ported Gateway API conformance suite (test/conformance/) and write its result as an
 * upstream ConformanceReport (gateway.networking.k8s.io/v1) to docs/conformance/.
 *
 *   node --import tsx scripts/conformance-report.ts [--out docs/conformance/<file>.yaml]
 *
 * Every count comes from this run: a test the run did not pass is not reported as passed.
 * A `todo` test counts as failed; a skipped test is listed with its reason in the docs page.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { format, resolveConfig } from 'prettier';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { stringify } from 'yaml';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const GATEWAY_API_VERSION = 'v1.3.0';

type Level = 'core' | 'extended';
interface Meta {
  profile: 'MESH-HTTP' | 'MESH-GRPC';
  level: Level;
  /** Upstream feature names the test needs beyond the profile's core (Mesh, HTTPRoute / GRPCRoute). */
  features: string[];
}

/** Upstream's tests and what each needs (from each test's `Features` list). */
const TESTS: Record<string, Meta> = {
  MeshBasic: { profile: 'MESH-HTTP', level: 'core', features: [] },
  MeshTrafficSplit: { profile: 'MESH-HTTP', level: 'core', features: [] },
  MeshHTTPRouteMatching: { profile: 'MESH-HTTP', level: 'core', features: [] },
  MeshHTTPRouteSimpleSameNamespace: { profile: 'MESH-HTTP', level: 'core', features: [] },
  MeshHTTPRouteRedirectHostAndStatus: { profile: 'MESH-HTTP', level: 'core', features: [] },
  MeshHTTPRouteRequestHeaderModifier: { profile: 'MESH-HTTP', level: 'core', features: [] },
  MeshHTTPRouteWeight: { profile: 'MESH-HTTP', level: 'core', features: [] },
  MeshPorts: {
    profile: 'MESH-HTTP',
    level: 'extended',
    features: ['HTTPRouteParentRefPort', 'HTTPRouteResponseHeaderModification'],
  },
  MeshFrontend: {
    profile: 'MESH-HTTP',
    level: 'extended',
    features: ['HTTPRouteResponseHeaderModification'],
  },
  MeshFrontendHostname: {
    profile: 'MESH-HTTP',
    level: 'extended',
    features: ['MeshClusterIPMatching', 'HTTPRouteResponseHeaderModification'],
  },
  MeshConsumerRoute: {
    profile: 'MESH-HTTP',
    level: 'extended',
    features: ['MeshConsumerRoute', 'HTTPRouteResponseHeaderModification'],
  },
  MeshHTTPRouteQueryParamMatching: {
    profile: 'MESH-HTTP',
    level: 'extended',
    features: ['MeshHTTPRouteQueryParamMatching'],
  },
  MeshHTTPRouteBackendRequestHeaderModifier: {
    profile: 'MESH-HTTP',
    level: 'extended',
    features: ['MeshHTTPRouteBackendRequestHeaderModification'],
  },
  MeshHTTPRouteRedirectPath: {
    profile: 'MESH-HTTP',
    level: 'extended',
    features: ['MeshHTTPRouteRedirectPath'],
  },
  MeshHTTPRouteRedirectPort: {
    profile: 'MESH-HTTP',
    level: 'extended',
    features: ['MeshHTTPRouteRedirectPort'],
  },
  MeshHTTPRouteSchemeRedirect: {
    profile: 'MESH-HTTP',
    level: 'extended',
    features: ['MeshHTTPRouteSchemeRedirect'],
  },
  MeshHTTPRouteRewritePath: {
    profile: 'MESH-HTTP',
    level: 'extended',
    features: ['MeshHTTPRouteRewritePath'],
  },
  MeshHTTPRouteNamedRule: {
    profile: 'MESH-HTTP',
    level: 'extended',
    features: ['MeshHTTPRouteNamedRouteRule'],
  },
  MeshHTTPRoute303Redirect: {
    profile: 'MESH-HTTP',
    level: 'extended',
    features: ['HTTPRoute303RedirectStatusCode'],
  },
  MeshHTTPRoute307Redirect: {
    profile: 'MESH-HTTP',
    level: 'extended',
    features: ['HTTPRoute307RedirectStatusCode'],
  },
  MeshHTTPRoute308Redirect: {
    profile: 'MESH-HTTP',
    level: 'extended',
    features: ['HTTPRoute308RedirectStatusCode'],
  },
  MeshHTTPRouteAdditionalRedirectHostAndStatus: {
    profile: 'MESH-HTTP',
    level: 'extended',
    features: ['HTTPRouteAdditionalRedirectStatusCodes'],
  },
  MeshGRPCRouteRequestHeaderModifier: { profile: 'MESH-GRPC', level: 'core', features: [] },
  MeshGRPCRouteWeight: { profile: 'MESH-GRPC', level: 'core', features: [] },
  MeshGRPCRouteRequestMirror: {
    profile: 'MESH-GRPC',
    level: 'extended',
    features: ['GRPCRouteRequestMirror'],
  },
  // Gateway-profile HTTPRoute tests run with a Service parent: the MESH-HTTP profile's
  // extended features include HTTPRoute's.
  HTTPRouteHeaderMatching: { profile: 'MESH-HTTP', level: 'core', features: [] },
  HTTPRouteMethodMatching: { profile: 'MESH-HTTP', level: 'extended', features: ['HTTPRouteMethodMatching'] },
  HTTPRouteResponseHeaderModifier: {
    profile: 'MESH-HTTP',
    level: 'extended',
    features: ['HTTPRouteResponseHeaderModification'],
  },
  HTTPRouteRewriteHost: { profile: 'MESH-HTTP', level: 'extended', features: ['HTTPRouteHostRewrite'] },
  HTTPRouteRequestMirror: { profile: 'MESH-HTTP', level: 'extended', features: ['HTTPRouteRequestMirror'] },
  HTTPRouteRequestMultipleMirrors: {
    profile: 'MESH-HTTP',
    level: 'extended',
    features: ['HTTPRouteRequestMirror', 'HTTPRouteRequestMultipleMirrors'],
  },
  HTTPRouteTimeoutRequest: { profile: 'MESH-HTTP', level: 'extended', features: ['HTTPRouteRequestTimeout'] },
  HTTPRouteTimeoutBackendRequest: {
    profile: 'MESH-HTTP',
    level: 'extended',
    features: ['HTTPRouteBackendTimeout'],
  },
  HTTPRouteRetry: { profile: 'MESH-HTTP', level: 'extended', features: ['HTTPRouteRetry'] },
  HTTPRouteRetryWithTimeouts: {
    profile: 'MESH-HTTP',
    level: 'extended',
    features: [
      'HTTPRouteRetry',
      'HTTPRouteRetryBackendTimeout',
      'HTTPRouteRequestTimeout',
      'HTTPRouteBackendTimeout',
    ],
  },
  HTTPRouteRetryConnectionError: {
    profile: 'MESH-HTTP',
    level: 'extended',
    features: ['HTTPRouteRetryConnectionError'],
  },
  HTTPRouteRequestPercentageMirror: {
    profile: 'MESH-HTTP',
    level: 'extended',
    features: ['HTTPRouteRequestPercentageMirror'],
  },
  // Gateway-profile GRPCRoute tests with a Service parent (MESH-GRPC: GRPCRoute is its core).
  GRPCExactMethodMatching: { profile: 'MESH-GRPC', level: 'core', features: [] },
  GRPCRouteHeaderMatching: { profile: 'MESH-GRPC', level: 'core', features: [] },
  GRPCRouteWeight: { profile: 'MESH-GRPC', level: 'core', features: [] },
  GRPCRouteAllBackendsWeightZero: { profile: 'MESH-GRPC', level: 'core', features: [] },
  // Core as MeshGRPCRouteRequestHeaderModifier is (GRPCRoute's feature set lists no extra name for it).
  GRPCRouteRequestHeaderModifier: { profile: 'MESH-GRPC', level: 'core', features: [] },
  GRPCRouteRequestMirror: { profile: 'MESH-GRPC', level: 'extended', features: ['GRPCRouteRequestMirror'] },
  GRPCRouteNamedRule: { profile: 'MESH-GRPC', level: 'extended', features: ['GRPCRouteNamedRouteRule'] },
};

interface Outcome {
  name: string;
  nesting: number;
  outcome: 'passed' | 'failed' | 'skipped' | 'todo';
  reason?: string;
  error?: string;
}

function runSuite(): Outcome[] {
  const files = [
    'test/conformance/mesh-http.test.ts',
    'test/conformance/mesh-grpc.test.ts',
    'test/conformance/gateway-grpc.test.ts',
    'test/conformance/gateway-http.test.ts',
    'test/conformance/gateway-retry.test.ts',
  ];
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      '--test',
      '--test-timeout=300000',
      `--test-reporter=${join(root, 'scripts/conformance-reporter.mjs')}`,
      ...files,
    ],
    { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 },
  );
  const out: Outcome[] = [];
  for (const line of r.stdout.split('\n')) if (line.startsWith('{')) out.push(JSON.parse(line) as Outcome);
  if (out.length === 0) throw new Error(`conformance run produced no results:\n${r.stderr}`);
  return out;
}

function report(results: Outcome[]) {
  const byName = new Map<string, Outcome>();
  for (const o of results) if (TESTS[o.name] && !byName.has(o.name)) byName.set(o.name, o);
  const missing = Object.keys(TESTS).filter((n) => !byName.has(n));
  const profiles = [];
  const skippedTests: { name: string; reason: string }[] = [];
  for (const profile of ['MESH-HTTP', 'MESH-GRPC'] as const) {
    const section = (level: Level) => {
      const names = Object.keys(TESTS).filter(
        (n) => TESTS[n].profile === profile && TESTS[n].level === level,
      );
      const stats = { Passed: 0, Failed: 0, Skipped: 0 };
      const failed: string[] = [];
      const skipped: string[] = [];
      const supported = new Set<string>();
      const unsupported = new Set<string>();
      for (const n of names) {
        const o = byName.get(n);
        if (o?.outcome === 'passed') {
          stats.Passed++;
          for (const f of TESTS[n].features) supported.add(f);
        } else if (o?.outcome === 'skipped') {
          stats.Skipped++;
          skipped.push(n);
          skippedTests.push({ name: n, reason: o.reason ?? 'skipped' });
          for (const f of TESTS[n].features) unsupported.add(f);
        } else {
          stats.Failed++;
          failed.push(n);
          for (const f of TESTS[n].features) unsupported.add(f);
        }
      }
      for (const f of supported) unsupported.delete(f);
      const result = stats.Failed > 0 ? 'failure' : stats.Skipped > 0 ? 'partial' : 'success';
      return {
        result,
        statistics: stats,
        ...(failed.length ? { failedTests: failed } : {}),
        ...(skipped.length ? { skippedTests: skipped } : {}),
        ...(level === 'extended'
          ? { supportedFeatures: [...supported].sort(), unsupportedFeatures: [...unsupported].sort() }
          : {}),
      };
    };
    const core = section('core');
    const extended = section('extended');
    profiles.push({
      name: profile,
      core,
      extended,
      summary: `Core tests ${core.result === 'success' ? 'succeeded' : core.result}. Extended tests ${
        extended.result === 'success'
          ? 'succeeded'
          : extended.result === 'partial'
            ? 'partially succeeded'
            : 'failed'
      }.`,
    });
  }
  const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string })
    .version;
  return {
    doc: {
      apiVersion: 'gateway.networking.k8s.io/v1',
      kind: 'ConformanceReport',
      date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      gatewayAPIVersion: GATEWAY_API_VERSION,
      gatewayAPIChannel: 'experimental',
      implementation: {
        organization: 'hexmesh',
        project: 'hexmesh',
        url: 'https://github.com/hexmesh/hexmesh',
        version: `v${version}`,
        contact: ['@hexmesh/maintainers'],
      },
      mode: 'default',
      profiles,
    },
    skippedTests,
    missing,
    version,
  };
}

const outArg = process.argv.indexOf('--out');
const results = runSuite();
const { doc, skippedTests, missing, version } = report(results);
const out =
  outArg > 0
    ? process.argv[outArg + 1]
    : join(root, 'docs/conformance', `hexmesh-v${version}-mesh-report.yaml`);
const header =
  '# Generated by scripts/conformance-report.ts from a run of test/conformance/ — do not edit.\n' +
  skippedTests.map((s) => `# skipped ${s.name}: ${s.reason}\n`).join('') +
  missing.map((n) => `# not run ${n} (counted as failed)\n`).join('');
// Written as the repository's formatter would (npm run lint checks docs/ too).
const options = { ...(await resolveConfig(out)), filepath: out };
writeFileSync(out, await format(header + stringify(doc), options));
const failed = results
  .filter((o) => o.nesting >= 1 && TESTS[o.name] && o.outcome === 'failed')
  .map((o) => o.name);
process.stdout.write(`wrote ${out}${failed.length ? `; failed: ${failed.join(', ')}` : ''}\n`);
