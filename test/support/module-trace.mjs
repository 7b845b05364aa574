// `node --import ./module-trace.mjs ...` with MODULE_TRACE=<file>: at exit, appends the URL (or
// path) of every script the process's main thread has loaded to <file>, one a line: ES modules,
// CommonJS modules and Node's own (`node:...`). Read from the inspector's scriptParsed events,
// which cover this isolate only, so a worker thread's modules are not counted (nor a child
// process's: it has no preload). Used by test/proxy/sidecar-footprint.test.ts and
// bench/sidecar-footprint.ts to list the packages a sidecar keeps; nothing is loaded or hooked
// until the process exits.
import { appendFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { isMainThread } from 'node:worker_threads';

const out = process.env.MODULE_TRACE;
// Workers inherit the preload: only the main thread reports.
if (out && isMainThread) {
  process.on('exit', () => {
    const session = new Session();
    session.connect();
    const urls = [];
    // Enabling the debugger reports every script already parsed, synchronously.
    session.on('Debugger.scriptParsed', (e) => urls.push(e.params.url));
    session.post('Debugger.enable');
    session.disconnect();
    appendFileSync(out, urls.map((u) => `${u}\n`).join(''));
  });
}
