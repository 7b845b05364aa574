/**
 * systemd units for a host (docs/install.md): the templates in deploy/systemd/ filled in with
 * one node's parameters. Pure functions (text in, text out); `hexmesh install --systemd`
 * writes the result.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HexmeshError } from '../errors/hexmesh-error.ts';
import { ROOT } from '../runtime/paths.ts';

/** The folder of the unit templates (in the checkout and in the npm package). */
export const SYSTEMD_TEMPLATES = join(ROOT, 'deploy', 'systemd');

/** The state directory the control-plane unit gives its process (StateDirectory=hexmesh/control). */
export const CONTROL_STATE_DIR = '/var/lib/hexmesh/control';

export interface RenderedFile {
  /** Path relative to the root of the target file system (`etc/systemd/system/x.service`). */
  path: string;
  content: string;
  mode: number;
}

/**
 * One word of an `ExecStart=` line (systemd.service(5) "Command lines"): quoted when it holds
 * anything but safe characters; `%` (specifiers) and `$` (variables) escaped so a value is
 * passed as written.
 */
export function execWord(word: string): string {
  const escaped = word.replaceAll('%', '%%').replaceAll('$', '$$$$');
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(escaped)) return escaped;
  return `"${escaped.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

/** Fill every `{{name}}` of `template`; a placeholder without a value is an error (never left in a unit). */
export function fillTemplate(template: string, values: Record<string, string>): string {
  return template.replace(/\{\{(\w+)\}\}/g, (_, name: string) => {
    const v = values[name];
    if (v === undefined)
      throw new HexmeshError('HEXMESH_ERR_CONFIG_INVALID', `systemd template: no value for {{${name}}}`);
    if (/[\n\r]/.test(v))
      throw new HexmeshError('HEXMESH_ERR_CONFIG_INVALID', `systemd template: {{${name}}} must be one line`);
    return v;
  });
}

/** Capabilities a listener needs: binding a port below 1024 as a non-root user. */
function capabilitiesFor(ports: number[]): string {
  return ports.some((p) => p > 0 && p < 1024) ? 'CAP_NET_BIND_SERVICE' : '';
}

function portOf(hostPort: string): number {
  return Number(hostPort.slice(hostPort.lastIndexOf(':') + 1));
}

function template(name: string): string {
  return readFileSync(join(SYSTEMD_TEMPLATES, name), 'utf8');
}

/** The dedicated user, as a sysusers.d file. */
export function sysusersFile(): RenderedFile {
  return { path: 'etc/sysusers.d/hexmesh.conf', content: template('hexmesh.sysusers'), mode: 0o644 };
}

export interface ControlUnitParams {
  /** The command that runs hexmesh: node and the bin script, absolute. */
  command: string[];
  /** `hexmesh control` arguments after `control` (without --data-dir, which is the state dir). */
  args: string[];
  listen: string;
}

export function controlUnit(p: ControlUnitParams): RenderedFile {
  const exec = [...p.command, 'control', ...p.args, '--data-dir', CONTROL_STATE_DIR];
  const content = fillTemplate(template('hexmesh-control.service'), {
    listen: p.listen,
    execStart: exec.map(execWord).join(' '),
    capabilities: capabilitiesFor([portOf(p.listen)]),
  });
  return { path: 'etc/systemd/system/hexmesh-control.service', content, mode: 0o644 };
}

export interface SidecarUnitParams {
  command: string[];
  /** `hexmesh proxy` arguments after `proxy`. */
  args: string[];
  service: string;
  namespace: string;
  appPort: number;
  /** Listeners the unit may need a capability for. */
  listeners: string[];
  /** The app's unit: the sidecar starts after it (optional). */
  appUnit?: string;
}

/** The unit's file name for a service's sidecar. */
export function sidecarUnitName(service: string): string {
  return `hexmesh-sidecar-${service}.service`;
}

export function sidecarUnit(p: SidecarUnitParams): RenderedFile {
  const exec = [...p.command, 'proxy', ...p.args];
  const content = fillTemplate(template('hexmesh-sidecar.service'), {
    service: p.service,
    namespace: p.namespace,
    appPort: String(p.appPort),
    appUnit: p.appUnit ?? '',
    execStart: exec.map(execWord).join(' '),
    capabilities: capabilitiesFor(p.listeners.map(portOf)),
  });
  return { path: `etc/systemd/system/${sidecarUnitName(p.service)}`, content, mode: 0o644 };
}

/** The root-only environment file with a sidecar's join token. */
export function sidecarEnvFile(service: string, joinToken: string): RenderedFile {
  if (!/^[\w.-]+$/.test(joinToken))
    throw new HexmeshError('HEXMESH_ERR_CONFIG_INVALID', 'join token: expected hxjt.<id>.<secret>');
  return {
    path: `etc/hexmesh/sidecar-${service}.env`,
    content: `HEXMESH_JOIN_TOKEN=${joinToken}\n`,
    mode: 0o600,
  };
}
