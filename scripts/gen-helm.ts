/**
 * Write the Helm chart deploy/helm/hexmesh from the objects `hexmesh install --kubernetes`
 * prints (src/deploy/helm-chart.ts). test/deploy/helm-chart.test.ts fails while it is stale.
 *
 *   node --import tsx scripts/gen-helm.ts
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { helmChartFiles } from '../src/deploy/helm-chart.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'deploy', 'helm', 'hexmesh');
for (const [path, text] of Object.entries(helmChartFiles())) {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), text);
}
