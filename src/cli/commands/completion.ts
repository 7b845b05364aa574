/**
 * `hexmesh completion bash|zsh|fish`: a shell completion script generated from the command
 * tree itself (every command, sub-command and option of buildCli()), so it never goes stale.
 * Static: pressing Tab runs no hexmesh process.
 */
import { Argument, Command } from 'commander';

interface Node {
  /** Space-separated path below `hexmesh` ('' for the root). */
  path: string;
  subs: string[];
  options: string[];
  descriptions: Map<string, string>;
}

function nodes(root: Command): Node[] {
  const out: Node[] = [];
  const walk = (cmd: Command, path: string) => {
    const visible = cmd.commands.filter((c) => !(c as Command & { _hidden?: boolean })._hidden);
    const descriptions = new Map(visible.map((c) => [c.name(), c.description()]));
    for (const o of cmd.options) if (o.long) descriptions.set(o.long, o.description);
    out.push({
      path,
      subs: visible.map((c) => c.name()),
      options: [...cmd.options.flatMap((o) => [o.long, o.short].filter((f): f is string => !!f)), '--help'],
      descriptions,
    });
    for (const c of visible) walk(c, path ? `${path} ${c.name()}` : c.name());
  };
  walk(root, '');
  return out;
}

const sq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

export function bashScript(root: Command): string {
  const all = nodes(root);
  const cases = (pick: (n: Node) => string[]) =>
    all.map((n) => `    ${sq(n.path)}) echo ${sq(pick(n).join(' '))} ;;`).join('\n');
  return `# hexmesh completion for bash (and zsh via bashcompinit): eval "$(hexmesh completion bash)"
_hexmesh_subs() {
  case "$1" in
${cases((n) => n.subs)}
  esac
}
_hexmesh_words() {
  case "$1" in
${cases((n) => [...n.subs, ...n.options])}
  esac
}
_hexmesh() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" path="" i w
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    [[ $w == -* ]] && continue
    case " $(_hexmesh_subs "$path") " in
      *" $w "*) path="\${path:+$path }$w" ;;
    esac
  done
  COMPREPLY=($(compgen -W "$(_hexmesh_words "$path")" -- "$cur"))
}
complete -o default -F _hexmesh hexmesh
`;
}

export function zshScript(root: Command): string {
  return `# hexmesh completion for zsh: eval "$(hexmesh completion zsh)"
autoload -U +X bashcompinit && bashcompinit
${bashScript(root).split('\n').slice(1).join('\n')}`;
}

export function fishScript(root: Command): string {
  const lines = ['# hexmesh completion for fish: hexmesh completion fish | source', 'complete -c hexmesh -f'];
  for (const n of nodes(root)) {
    const words = n.path ? n.path.split(' ') : [];
    // The condition: exactly this path typed so far (the last word of it seen, none of its subs yet).
    const cond = words.length
      ? `__fish_seen_subcommand_from ${words.at(-1)}${n.subs.length ? `; and not __fish_seen_subcommand_from ${n.subs.join(' ')}` : ''}`
      : '__fish_use_subcommand';
    for (const s of n.subs)
      lines.push(`complete -c hexmesh -n ${sq(cond)} -a ${sq(s)} -d ${sq(n.descriptions.get(s) ?? '')}`);
    if (!words.length) continue;
    const optCond = `__fish_seen_subcommand_from ${words.at(-1)}`;
    for (const o of n.options.filter((x) => x.startsWith('--')))
      lines.push(
        `complete -c hexmesh -n ${sq(optCond)} -l ${o.slice(2)} -d ${sq(n.descriptions.get(o) ?? '')}`,
      );
  }
  return `${lines.join('\n')}\n`;
}

export function completionCommand(): Command {
  return new Command('completion')
    .description('print a shell completion script (bash, zsh or fish)')
    .addArgument(new Argument('<shell>', 'bash, zsh or fish').choices(['bash', 'zsh', 'fish']))
    .addHelpText(
      'after',
      `
Examples:
  eval "$(hexmesh completion bash)"        # in ~/.bashrc
  eval "$(hexmesh completion zsh)"         # in ~/.zshrc
  hexmesh completion fish > ~/.config/fish/completions/hexmesh.fish`,
    )
    .action((shell: 'bash' | 'zsh' | 'fish', _opts: unknown, cmd: Command) => {
      let root = cmd;
      while (root.parent) root = root.parent;
      const script =
        shell === 'bash' ? bashScript(root) : shell === 'zsh' ? zshScript(root) : fishScript(root);
      process.stdout.write(script);
    });
}
