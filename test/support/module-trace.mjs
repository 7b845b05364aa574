// `node --import ./module-trace.mjs ...` with MODULE_TRACE=<file>: appends the URL of every
// module the process loads to <file>. ES modules (and CommonJS ones imported from them) through a
// load hook, as they load; CommonJS modules required from CommonJS at exit, from require.cache
// (Node 20's hooks do not see require()). Used by test/proxy/sidecar-footprint.test.ts and
// bench/sidecar-footprint.ts to list the packages a sidecar loads; not for memory figures (the
// hooks thread costs memory of its own).
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { pathToFileURL } from 'node:url';

const out = process.env.MODULE_TRACE;
if (out) {
  register(new URL('./module-trace-hooks.mjs', import.meta.url), { data: { out } });
  const require = createRequire(import.meta.url);
  process.on('exit', () => {
    const files = Object.keys(require.cache).map((f) => pathToFileURL(f).href);
    appendFileSync(out, files.map((u) => `${u}\n`).join(''));
  });
}
