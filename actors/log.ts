// Structured logs (pino): one JSON line per event in a file, readable lines on a terminal. Every
// line of a monitor carries its name, state and election epoch: a MonitorLogContext reads them
// live from the monitor's root actor at each line (pino's `mixin`), so no call site has to.

import pino, { type Logger } from 'pino';
import type { AnyActorRef, InspectionEvent } from 'xstate';
import { monitorStateName } from '../machines/monitor.ts';

export type { Logger };

/** How createLogger logs: level, destination, format and the fields of every line. */
export interface LogOptions {
  level?: string;
  /** Write JSON lines to this file (appending) instead of stderr. */
  file?: string;
  /** Pretty, human lines (default when stderr is a terminal and no file is given). */
  pretty?: boolean;
  bindings?: Record<string, unknown>;
  /**
   * Fields added to every line, read when the line is written (e.g. a MonitorLogContext's
   * `fields`). A field given to the log call itself wins over the same field here.
   */
  fields?: () => Record<string, unknown>;
}

/**
 * Create the process's logger.
 *
 * @example
 * const context = new MonitorLogContext();
 * const logger = createLogger({ level: 'debug', file: 'mon.a.log', fields: context.fields });
 */
export function createLogger(options: LogOptions = {}): Logger {
  const level = options.level ?? process.env.PAXMON_LOG_LEVEL ?? 'info';
  const base = { ...(options.bindings ?? {}) };
  const mixin = options.fields ? { mixin: options.fields } : {};
  if (options.file) {
    return pino(
      { level, base, ...mixin },
      pino.destination({ dest: options.file, append: true, sync: false, mkdir: true }),
    );
  }
  const pretty = options.pretty ?? Boolean(process.stderr.isTTY);
  if (pretty) {
    return pino({
      level,
      base,
      ...mixin,
      transport: {
        target: 'pino-pretty',
        options: { destination: 2, colorize: true, ignore: 'pid,hostname' },
      },
    });
  }
  return pino({ level, base, ...mixin }, pino.destination(2));
}

/** A logger that drops everything (for specs and embedding without logs). */
export const silentLogger: Logger = pino({ level: 'silent' });

/** What a MonitorLogContext knows before the monitor's actor exists (read from its store). */
export interface MonitorLogFields {
  mon?: string;
  state?: string;
  election_epoch?: number;
}

interface MonitorSnapshotLike {
  value?: unknown;
  context?: { name?: unknown; electionEpoch?: unknown };
}

/**
 * The `mon`, `state` and `election_epoch` of one monitor, for every log line it writes. Attach
 * it to the monitor's root actor — directly with `attach`, or by passing `inspect` to
 * createMonitor/startMonitor, which attaches on the root actor's creation — and give `fields`
 * to createLogger. The fields are read from the actor's current snapshot at each line, so a
 * line logged while the monitor changes state already shows the new state.
 *
 * @example
 * const context = new MonitorLogContext();
 * const logger = createLogger({ fields: context.fields });
 * const mon = await startMonitor({ dir, logger, inspect: context.inspect });
 */
export class MonitorLogContext {
  #initial: MonitorLogFields;
  #actor: AnyActorRef | undefined;

  constructor(initial: MonitorLogFields = {}) {
    this.#initial = { ...initial };
  }

  #handle: { readonly actor: AnyActorRef } | undefined;

  /** Read the fields from this actor (the monitor statechart's root actor) from now on. */
  attach(actor: AnyActorRef): void {
    this.#actor = actor;
  }

  /**
   * Read the fields from a monitor handle's current root actor (it changes when a store sync
   * rebuilds the actor tree). Cheaper than `inspect`: no inspection events are generated.
   */
  follow(handle: { readonly actor: AnyActorRef }): void {
    this.#handle = handle;
  }

  /** An XState inspection observer that attaches to the root actor of the tree it observes. */
  readonly inspect = (event: InspectionEvent): void => {
    if (event.type !== '@xstate.actor' || this.#actor) return;
    if ((event.actorRef as { _parent?: unknown })._parent === undefined)
      this.attach(event.actorRef as AnyActorRef);
  };

  /** The current fields (pino `mixin`). */
  readonly fields = (): Record<string, unknown> => {
    const fields: Record<string, unknown> = { ...this.#initial };
    let snapshot: MonitorSnapshotLike | undefined;
    try {
      snapshot = (this.#handle?.actor ?? this.#actor)?.getSnapshot() as MonitorSnapshotLike | undefined;
    } catch {
      snapshot = undefined; // the actor is still being constructed
    }
    if (!snapshot) return fields;
    const name = snapshot.context?.name;
    if (typeof name === 'string') fields.mon = name;
    if (snapshot.value !== undefined && snapshot.value !== null)
      fields.state = monitorStateName({ value: snapshot.value });
    const epoch = snapshot.context?.electionEpoch;
    if (typeof epoch === 'number') fields.election_epoch = epoch;
    return fields;
  };
}
