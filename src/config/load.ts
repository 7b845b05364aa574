/**
 * Validate configuration once, at the edge: parse YAML or JSON, check it against one
 * schema, report every problem with its path, value and reason, and freeze the result.
 */
import { readFile } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import { ConfigError, type ConfigProblem } from './config-error.ts';
import { proxyConfigSchema, type ProxyConfig } from './proxy-config.ts';
import { validate } from './validate.ts';

export { ConfigError, deepFreeze, formatPath, type ConfigProblem } from './config-error.ts';
export { validate } from './validate.ts';

/** Parse YAML (or JSON) text; syntax errors are reported with line and column. */
export function parseDocuments(text: string, source: string): unknown[] {
  const docs = parseAllDocuments(text);
  const list = Array.isArray(docs) ? docs : [docs];
  const problems: ConfigProblem[] = [];
  for (const d of list) {
    for (const e of d.errors) {
      const pos = e.linePos?.[0];
      problems.push({
        path: pos ? `line ${pos.line}, column ${pos.col}` : '',
        value: undefined,
        // yaml's first line repeats the position ("... at line 4, column 2:"); we print it as the path.
        message: e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, ''),
      });
    }
  }
  if (problems.length) throw new ConfigError(source, problems);
  return list.map((d) => d.toJS()).filter((d) => d !== null && d !== undefined);
}

export function parseProxyConfig(doc: unknown, source = 'config'): ProxyConfig {
  return validate(proxyConfigSchema, doc, source);
}

/**
 * Read `path` and parse it as exactly one YAML document; throws ConfigError (named `source`)
 * if the file cannot be read, does not parse, or holds other than one document.
 */
export async function readOneDocument(path: string, source: string = path): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ConfigError(source, [
      { path: '', value: undefined, message: `cannot read file: ${(e as Error).message}` },
    ]);
  }
  const docs = parseDocuments(text, source);
  if (docs.length !== 1)
    throw new ConfigError(source, [
      { path: '', value: undefined, message: `expected one YAML document, found ${docs.length}` },
    ]);
  return docs[0];
}

export async function loadProxyConfig(file: string): Promise<ProxyConfig> {
  return parseProxyConfig(await readOneDocument(file), file);
}
