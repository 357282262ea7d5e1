// One way for the small benches to read their options: an unknown or malformed option is a
// one-line error with the usage and exit code 2 (not a stack trace, and not a silent full run);
// --help prints the usage.
import { type ParseArgsConfig, parseArgs } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;

export function benchArgs<T extends Options>(
  name: string,
  usage: string,
  options: T,
  positionals = 0,
): {
  values: ReturnType<typeof parseArgs<{ options: T; allowPositionals: true }>>['values'];
  positionals: string[];
} {
  let parsed: ReturnType<typeof parseArgs<{ options: T; allowPositionals: true }>>;
  try {
    parsed = parseArgs({
      options: { ...options, help: { type: 'boolean', short: 'h' } } as T,
      // Positionals only where a bench takes some: elsewhere Node's own message names the stray one.
      allowPositionals: positionals > 0,
    });
    if (parsed.positionals.length > positionals)
      throw new Error(`unexpected argument '${parsed.positionals[positionals]}'`);
  } catch (error) {
    process.stderr.write(`${name}: ${(error as Error).message}\n${usage}`);
    process.exit(2);
  }
  if ((parsed.values as Record<string, unknown>).help) {
    process.stdout.write(usage);
    process.exit(0);
  }
  return { values: parsed.values, positionals: parsed.positionals };
}
