// Ceph's option grammar on paxmon's command line: `ceph` takes its global options anywhere
// (`ceph quorum_status -f json`, `ceph -f json quorum_status`), `-s` is `status`, and
// `--connect-timeout` bounds the wait. Commander takes global options before the command only,
// so the words are put in that order first: every global option found after the command moves
// before it, unless that command has an option of the same flag itself (`mon --dir`, `mkfs
// --name`, `up --timeout`, `statecharts --format`), which keeps it.

/** The log levels of `paxmon mon|up --log-level` (pino's). */
export const logLevels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
/** The inspector bridge's port when `--inspect` names none (@statelyai/inspect's default). */
export const inspectPortDefault = 8080;

/** Global options that take a value (their flags, short and long). */
export const globalValueFlags = [
  '-m',
  '--mon-host',
  '-f',
  '--format',
  '-c',
  '--conf',
  '--connect-timeout',
  '--timeout',
  '-n',
  '--name',
  '-k',
  '--keyring',
  '--dir',
];
/** Global options without a value. */
const globalFlags = ['--version', '-s', '--status', '-w', '--watch'];

export interface CommandFlags {
  /** Each command's own flags (its options' short and long forms). */
  flagsOf(command: string): string[] | undefined;
}

/** `--format=json` → `--format`; `-fjson` is not split (commander does it for known options). */
const flagOf = (word: string) => (word.startsWith('--') ? (word.split('=')[0] as string) : word);

/**
 * Reorder `words` (argv without node and the script) as commander wants them: global options,
 * the command, its words and options. `-s`/`--status` become the `status` command, `-w`/`--watch`
 * the `watch` command, `--connect-timeout` is `--timeout`.
 */
export function normalizeArgv(words: string[], commands: CommandFlags): string[] {
  const globals: string[] = [];
  const rest: string[] = [];
  let command: string | undefined;
  let own: string[] = [];
  let i = 0;
  for (; i < words.length; i += 1) {
    const word = words[i] as string;
    if (word === '--') break;
    const flag = flagOf(word);
    const isGlobalValue = globalValueFlags.includes(flag);
    const isGlobal = isGlobalValue || globalFlags.includes(flag);
    if (command === undefined && !word.startsWith('-')) {
      command = word;
      own = commands.flagsOf(word) ?? [];
      rest.push(word);
      continue;
    }
    if (!isGlobal || (command !== undefined && own.includes(flag))) {
      rest.push(word);
      // A command's own option with a value: its value is not a command word.
      continue;
    }
    const renamed = flag === '--connect-timeout' ? '--timeout' : flag;
    if (flag === '-s' || flag === '--status' || flag === '-w' || flag === '--watch') {
      // The command, unless one came before: what follows is its words and options
      // (`paxmon -w --interval 0.5`).
      if (command === undefined) {
        command = flag === '-s' || flag === '--status' ? 'status' : 'watch';
        own = commands.flagsOf(command) ?? [];
        rest.push(command);
      }
      continue;
    }
    if (isGlobalValue && !word.includes('=')) {
      globals.push(renamed);
      const value = words[i + 1];
      if (value !== undefined) {
        globals.push(value);
        i += 1;
      }
    } else globals.push(word.includes('=') ? `${renamed}${word.slice(flag.length)}` : renamed);
  }
  const tail = words.slice(i);
  // `paxmon --format mermaid statecharts`: the command's own --format, given before it.
  if (command !== undefined && own.includes('--format')) {
    const at = globals.findIndex((w) => w === '--format' || w === '-f');
    if (at >= 0 && command === 'statecharts') {
      const moved = globals.splice(at, 2);
      rest.push('--format', ...moved.slice(1));
    }
  }
  return [...globals, ...rest, ...tail];
}
