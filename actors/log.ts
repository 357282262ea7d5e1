// Structured logs (pino): one JSON line per event in a file, readable lines on a terminal. Every
// line of a monitor carries its name; state and election epoch are added where they change.
import pino, { type Logger } from 'pino';

export type { Logger };

export interface LogOptions {
  level?: string;
  /** Write JSON lines to this file (appending) instead of stderr. */
  file?: string;
  /** Pretty, human lines (default when stderr is a terminal and no file is given). */
  pretty?: boolean;
  bindings?: Record<string, unknown>;
}

export function createLogger(options: LogOptions = {}): Logger {
  const level = options.level ?? process.env.PAXMON_LOG_LEVEL ?? 'info';
  const base = { ...(options.bindings ?? {}) };
  if (options.file) {
    return pino(
      { level, base },
      pino.destination({ dest: options.file, append: true, sync: false, mkdir: true }),
    );
  }
  const pretty = options.pretty ?? Boolean(process.stderr.isTTY);
  if (pretty) {
    return pino({
      level,
      base,
      transport: {
        target: 'pino-pretty',
        options: { destination: 2, colorize: true, ignore: 'pid,hostname' },
      },
    });
  }
  return pino({ level, base }, pino.destination(2));
}

/** A logger that drops everything (for specs and embedding without logs). */
export const silentLogger: Logger = pino({ level: 'silent' });
