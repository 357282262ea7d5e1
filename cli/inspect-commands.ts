// Offline inspection commands: `paxmon replay FILE…` prints a recording (`--record FILE`) as a
// timeline; `paxmon statecharts` exports every machine definition as JSON or mermaid.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Command, Option } from 'commander';
import type { InspectionRecord } from '../actors/inspect.ts';
import { fail } from './errors.ts';

/** paxmon replay: the records of the files, as a timeline (filtered by monitor and actor). */
export async function replay(
  files: string[],
  options: { mon?: string; actor?: string; all?: boolean },
): Promise<string[]> {
  const { formatTimeline, readRecords } = await import('../actors/inspect.ts');
  const records: InspectionRecord[] = [];
  for (const file of files) {
    if (!existsSync(file)) fail('ENOENT', `no recording ${file} (make one with paxmon mon --record ${file})`);
    const { records: found, malformed } = readRecords(readFileSync(file, 'utf8'));
    if (found.length === 0)
      fail(
        'EINVAL',
        `${file} holds no paxmon inspection records${malformed ? ` (${malformed} bad lines)` : ''}`,
      );
    if (malformed > 0) process.stderr.write(`${file}: skipped ${malformed} lines that are not records\n`);
    records.push(...found);
  }
  const mon = options.mon?.replace(/^mon\./, '');
  if (mon !== undefined && !records.some((r) => r.mon === mon)) {
    const mons = [...new Set(records.map((r) => `mon.${r.mon}`))].join(', ');
    fail('ENOENT', `mon.${mon} is not in the recording (it has ${mons})`);
  }
  if (options.actor !== undefined && !records.some((r) => r.actor === options.actor)) {
    const actors = [...new Set(records.map((r) => r.actor))].join(', ');
    fail('ENOENT', `no actor '${options.actor}' in the recording (it has ${actors})`);
  }
  return formatTimeline(records, {
    ...(mon !== undefined ? { mon } : {}),
    ...(options.actor !== undefined ? { actor: options.actor } : {}),
    ...(options.all ? { all: true } : {}),
  });
}

/** Add `paxmon replay` and `paxmon statecharts` to the program. */
export function registerInspectCommands(program: Command): void {
  program
    .command('replay')
    .description('print a recording (paxmon mon/up --record FILE) as a timeline: messages and state changes')
    .argument('<file...>', 'recording(s) in JSON lines; several are merged by time')
    .option('--mon <name>', 'only this monitor (a or mon.a)')
    .option('--actor <id>', 'only this actor (monitor, elector, paxos, io, service:…) and what it sent')
    .option('--all', 'also show xstate.init events and snapshots that did not change state')
    .action(async (files: string[], options: { mon?: string; actor?: string; all?: boolean }) => {
      const lines = await replay(
        files.map((f) => resolve(f)),
        options,
      );
      process.stdout.write(lines.length > 0 ? `${lines.join('\n')}\n` : '');
    });

  program
    .command('statecharts')
    .description('export the machine definitions (monitor, elector, paxos) as JSON or mermaid diagrams')
    .addOption(
      new Option('--format <format>', 'output format').choices(['json', 'mermaid']).default('mermaid'),
    )
    .option('--out <dir>', 'write one file per machine (NAME.json or NAME.mmd) into this directory')
    // Not listed here: the statecharts (XState) load only when the command runs, so that every
    // other command starts without them; an unknown name is answered with the list.
    .option('--machine <name>', 'only this machine (monitor, elector…; an unknown name lists them)')
    .option('--readme <file>', "refresh the README's marked mermaid blocks instead of printing")
    .action(
      async (options: { format: 'json' | 'mermaid'; out?: string; machine?: string; readme?: string }) => {
        const { statechartJson, statechartMermaid, statecharts, updateReadmeDiagrams } = await import(
          './statecharts.ts'
        );
        const names = options.machine ? [options.machine] : Object.keys(statecharts);
        for (const name of names) {
          if (!statecharts[name])
            fail('ENOENT', `no machine '${name}' (known: ${Object.keys(statecharts).join(', ')})`);
        }
        const render = (name: string) => {
          const machine = statecharts[name] as (typeof statecharts)[string];
          return options.format === 'json'
            ? `${JSON.stringify(statechartJson(machine), null, 2)}\n`
            : statechartMermaid(machine);
        };
        if (options.readme) {
          const file = resolve(options.readme);
          if (!existsSync(file)) fail('ENOENT', `no file ${file}`);
          const diagrams = Object.fromEntries(
            names.map((n) => [n, statechartMermaid(statecharts[n] as never)]),
          );
          const { text, updated } = updateReadmeDiagrams(readFileSync(file, 'utf8'), diagrams);
          if (updated.length === 0) fail('ENOENT', `${file} has no <!-- statechart:NAME --> blocks`);
          writeFileSync(file, text);
          process.stdout.write(`updated ${updated.join(', ')} in ${file}\n`);
          return;
        }
        if (options.out) {
          const dir = resolve(options.out);
          mkdirSync(dir, { recursive: true });
          for (const name of names) {
            const file = join(dir, `${name}.${options.format === 'json' ? 'json' : 'mmd'}`);
            writeFileSync(file, render(name));
            process.stdout.write(`wrote ${file}\n`);
          }
          return;
        }
        if (options.format === 'json') {
          const all = Object.fromEntries(names.map((n) => [n, statechartJson(statecharts[n] as never)]));
          process.stdout.write(`${JSON.stringify(all, null, 2)}\n`);
        } else {
          process.stdout.write(names.map((n) => `%% ${n}\n${render(n)}`).join('\n'));
        }
      },
    );
}
