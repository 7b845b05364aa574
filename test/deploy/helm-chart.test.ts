/**
 * The Helm chart (deploy/helm/hexmesh) renders the same objects as `hexmesh install
 * --kubernetes`, checked twice: with the real `helm` (v4, built from the Go module proxy by
 * scripts/helm-peer.sh, which .ci/run calls: `helm lint` and `helm template --include-crds`),
 * and with a small renderer that knows exactly the template actions the chart uses —
 * `{{ .Values.x }}`, `{{ .Release.Namespace }}`, `| default …`, `| quote` — and refuses any
 * other, so a template change that needs more fails here instead of rendering wrongly.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { helmChartFiles } from '../../src/deploy/helm-chart.ts';
import { kubernetesManifests } from '../../src/deploy/kubernetes-manifests.ts';
import { ROOT } from '../support/cli.ts';

const CHART = join(ROOT, 'deploy/helm/hexmesh');

/** The helm scripts/helm-peer.sh built (HEXMESH_HELM overrides), or undefined. */
function findHelm(): string | undefined {
  if (process.env.HEXMESH_HELM) return process.env.HEXMESH_HELM;
  const cached = join(process.env.HEXMESH_K8S_CACHE ?? '/var/cache/hexmesh-k8s', 'helm-v4.3.2', 'helm');
  return existsSync(cached) ? cached : undefined;
}
const HELM = findHelm();
/** Why the real-helm tests cannot run; in CI (CI=true) a missing helm is a failure instead. */
const noHelm = HELM
  ? undefined
  : process.env.CI === 'true'
    ? undefined
    : 'helm not built: run scripts/helm-peer.sh (needs Go 1.26; .ci/run does)';

/** Render a template's actions against values and release (Go text/template + sprig subset). */
function render(text: string, values: Record<string, unknown>, release: { Namespace: string }): string {
  const term = (t: string): unknown => {
    const m = /^\.(Values|Release)\.([A-Za-z]+)$/.exec(t.trim());
    if (!m) throw new Error(`template term not understood by the test renderer: ${t}`);
    return m[1] === 'Values' ? values[m[2]] : release[m[2] as 'Namespace'];
  };
  return text.replace(/\{\{-?\s*(.*?)\s*-?\}\}/g, (_, action: string) => {
    const [first, ...fns] = action.split('|').map((s) => s.trim());
    let v = term(first);
    for (const fn of fns) {
      const [name, ...args] = fn.split(/\s+/);
      if (name === 'default' && args.length === 1)
        v = v === undefined || v === '' || v === null ? term(args[0]) : v;
      else if (name === 'quote' && !args.length) v = JSON.stringify(String(v ?? ''));
      else throw new Error(`template function not understood by the test renderer: ${fn}`);
    }
    return String(v);
  });
}

it('deploy/helm/hexmesh is what scripts/gen-helm.ts generates', () => {
  for (const [path, text] of Object.entries(helmChartFiles()))
    assert.equal(
      readFileSync(join(CHART, path), 'utf8'),
      text,
      `${path} is stale: node --import tsx scripts/gen-helm.ts`,
    );
});

for (const values of [
  {
    namespace: '',
    image: 'hexmesh/hexmesh:0.1.0',
    trustDomain: 'hexmesh.local',
    replicas: 1,
    release: 'hexmesh',
  },
  {
    namespace: 'mesh-system',
    image: 'registry.example/hx:1',
    trustDomain: 'corp.example',
    replicas: 3,
    release: 'x',
  },
  { namespace: '', image: 'r.example/hx:2', trustDomain: 'td', replicas: 2, release: '1234' },
])
  it(`the chart renders the objects of hexmesh install --kubernetes (${JSON.stringify(values)})`, () => {
    const defaults = parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(Object.keys(defaults).sort(), ['image', 'namespace', 'replicas', 'trustDomain']);
    const { release, ...v } = values;
    const rendered = render(
      readFileSync(join(CHART, 'templates/hexmesh.yaml'), 'utf8'),
      { ...defaults, ...v },
      {
        Namespace: release,
      },
    );
    const docs = (text: string) => parseAllDocuments(text).map((d) => d.toJS() as { kind: string });
    const crds = ['crds/hexmesh.yaml', 'crds/gateway-api.yaml'].flatMap((f) =>
      docs(readFileSync(join(CHART, f), 'utf8')),
    );
    const want = kubernetesManifests({
      namespace: v.namespace || release,
      image: v.image,
      trustDomain: v.trustDomain,
      replicas: v.replicas,
    });
    assert.deepEqual(
      docs(rendered),
      want.filter((o) => o.kind !== 'CustomResourceDefinition'),
    );
    assert.deepEqual(
      crds,
      want.filter((o) => o.kind === 'CustomResourceDefinition'),
    );
  });

it('helm lint passes on the chart', { skip: noHelm }, () => {
  assert.ok(HELM, 'helm missing in CI: scripts/helm-peer.sh did not run');
  const out = execFileSync(HELM, ['lint', '--strict', CHART], { encoding: 'utf8' });
  assert.match(out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
});

for (const values of [
  { release: 'hexmesh', namespace: 'hexmesh-system', set: {} as Record<string, string | number> },
  {
    release: 'mesh',
    namespace: 'ignored',
    set: {
      namespace: 'mesh-system',
      image: 'registry.example/hx:1',
      trustDomain: 'corp.example',
      replicas: 3,
    },
  },
])
  it(
    `helm template renders the objects of hexmesh install --kubernetes (${JSON.stringify(values)})`,
    { skip: noHelm },
    () => {
      assert.ok(HELM, 'helm missing in CI: scripts/helm-peer.sh did not run');
      const args = ['template', values.release, CHART, '--namespace', values.namespace, '--include-crds'];
      for (const [k, v] of Object.entries(values.set)) args.push('--set', `${k}=${v}`);
      const out = execFileSync(HELM, args, { encoding: 'utf8', maxBuffer: 64 << 20 });
      const got = parseAllDocuments(out)
        .map((d) => d.toJS() as { kind: string } | null)
        .filter((o): o is { kind: string } => o !== null);
      const defaults = parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as {
        image: string;
        trustDomain: string;
        replicas: number;
      };
      const v = { ...defaults, ...values.set } as {
        namespace?: string;
        image: string;
        trustDomain: string;
        replicas: number;
      };
      const want = kubernetesManifests({
        namespace: v.namespace || values.namespace,
        image: v.image,
        trustDomain: v.trustDomain,
        replicas: Number(v.replicas),
      });
      const key = (o: { kind: string; metadata?: { name?: string; namespace?: string } }) =>
        `${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
      const sorted = (l: { kind: string }[]) => [...l].sort((a, b) => key(a).localeCompare(key(b)));
      assert.deepEqual(sorted(got), sorted(want));
    },
  );
