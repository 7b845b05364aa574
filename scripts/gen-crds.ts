/**
 * Write deploy/kubernetes/crds/hexmesh.yaml: hexmesh's CRDs generated from the zod schemas
 * (src/control/kubernetes/crds.ts). test/kubernetes/crds.test.ts fails while the file is stale.
 *
 *   node --import tsx scripts/gen-crds.ts          # write it
 *   node --import tsx scripts/gen-crds.ts --check  # exit 1 if it differs
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { crdsYaml } from '../src/control/kubernetes/crds.ts';

const file = new URL('../deploy/kubernetes/crds/hexmesh.yaml', import.meta.url);
const text = crdsYaml();
if (process.argv.includes('--check')) {
  let old = '';
  try {
    old = readFileSync(file, 'utf8');
  } catch {
    // missing: stale
  }
  if (old !== text) {
    process.stderr.write(
      'deploy/kubernetes/crds/hexmesh.yaml is stale: node --import tsx scripts/gen-crds.ts\n',
    );
    process.exit(1);
  }
} else writeFileSync(file, text);
