/**
 * The Helm chart (deploy/helm/hexmesh) renders the same objects as `hexmesh install
 * --kubernetes`. No `helm` binary is available here (not in apt; building helm.sh/helm from
 * the Go module proxy costs minutes of a shared machine's CPU), so the templates are rendered
 * by a small renderer that knows exactly the template actions the chart uses —
 * `{{ .Values.x }}`, `{{ .Release.Namespace }}`, `| default …`, `| quote` — and refuses any
 * other, so a template change that needs more fails here instead of rendering wrongly.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { it } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { helmChartFiles } from '../../src/deploy/helm-chart.ts';
import { kubernetesManifests } from '../../src/deploy/kubernetes-manifests.ts';
import { ROOT } from '../support/cli.ts';

const CHART = join(ROOT, 'deploy/helm/hexmesh');

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
