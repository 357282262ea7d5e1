// What the simulated clients do (sim/clients.ts) and how their history is judged: a workload is
// a model for the linearizability checker (sim/linearizability/) and a generator of commands,
// each with the model's input and a reading of its reply as the model's output. The simulator's
// own workload is config-key's get/set/rm against the kv model (configKeyWorkload); paxmon's test
// kit (testing/) runs a user's service with the user's workload through the same simulator.
import type { Model } from './linearizability/index.ts';
import type { KvInput, KvOutput } from './linearizability/models.ts';
import { kvModel } from './linearizability/models.ts';
import type { Prng } from './prng.ts';

export const ENOENT = -2;
export const EAGAIN = -11;

/** The part of the simulator's PRNG a workload draws from (its client's own stream). */
export type Random = Pick<Prng, 'next' | 'int' | 'chance' | 'pick'>;

/** A command's reply as the client received it (`mon.command_ack`), its data also as UTF-8 text. */
export interface CommandReply {
  readonly r: number;
  readonly rs: string;
  readonly data: Uint8Array;
  readonly text: string;
}

/** One command a simulated client sends, and how its outcome enters the history. */
export interface ServiceOperation<Input, Output> {
  /** The command, as `paxmon COMMAND…` would send it (`['counter', 'add', '3']`). */
  readonly cmd: readonly string[];
  /** What the model steps on. */
  readonly input: Input;
  /**
   * A read changes nothing (answered by preprocess_query): a read that fails or goes unanswered
   * is left out of the history, and its answers must come from a readable monitor (the lease
   * invariant). Anything else is an update: once an attempt went unanswered it may have been
   * applied, so if it then fails or never returns it enters the history with an unknown outcome.
   */
  readonly read?: boolean;
  /**
   * The model's output for a final reply (anything but EAGAIN, which the client retries
   * elsewhere), or `null` when the command failed and changed nothing (a usage error, an update
   * refused). ENOENT may well be an answer (a read of a missing key).
   */
  output(reply: CommandReply): Output | null;
  /** How the trace names the operation (default: the command's words). */
  readonly label?: string;
  /** How the trace names an attempt to send it (default: `label`). */
  readonly sentLabel?: string;
}

export interface Workload<State, Input, Output> {
  /** The sequential specification the clients' history must be linearizable against. */
  readonly model: Model<State, Input, Output>;
  /**
   * The next operation of client `client` (1, 2, …), drawn from that client's stream; it is that
   * client's `count`th (1, 2, …), which makes values unique without state of the workload's own.
   */
  next(random: Random, client: number, count: number): ServiceOperation<Input, Output>;
  /**
   * Operations issued once the cluster is whole again after the faults (spread over the
   * clients): reads of everything, so that an acknowledged update that was lost shows up.
   */
  finalReads(): readonly ServiceOperation<Input, Output>[];
  /** What the trace says as the final reads start (default: `running the final reads`). */
  readonly finalReadsLine?: string;
}

const decoder = new TextDecoder();

/** The reply of a `mon.command_ack`, for ServiceOperation.output. */
export function commandReply(ack: { r: number; rs: string; data: Uint8Array }): CommandReply {
  return { r: ack.r, rs: ack.rs, data: ack.data, text: decoder.decode(ack.data) };
}

const configKeyReads = new Set(['get', 'exists', 'ls', 'dump']);

/** Whether a command is a config-key read (the lease invariant checks every config-key read). */
export function isConfigKeyRead(cmd: readonly string[]): boolean {
  return cmd[0] === 'config-key' && configKeyReads.has(cmd[1] ?? '');
}

/**
 * config-key get/set/rm over `keys` keys (`k0`, `k1`, …): half reads, 35% sets of a value unique
 * to its client and write (`c2.7`), 15% removals; at the end a read of every key. `missing:
 * 'undefined'`: config-key answers ENOENT for a missing key, which is not the empty string.
 */
export function configKeyWorkload(keys: number): Workload<unknown, KvInput, KvOutput> {
  const written = new Map<number, number>();
  const get = (key: string): ServiceOperation<KvInput, KvOutput> => ({
    cmd: ['config-key', 'get', key],
    input: { op: 'get', key },
    read: true,
    output: (reply) =>
      reply.r === 0 ? { value: reply.text } : reply.r === ENOENT ? { value: undefined } : null,
    label: `get ${key}`,
  });
  const done = (reply: CommandReply): KvOutput | null => (reply.r === 0 ? { value: undefined } : null);
  return {
    model: kvModel({ missing: 'undefined' }) as Workload<unknown, KvInput, KvOutput>['model'],
    next(random, client) {
      const draw = random.next();
      const key = `k${random.int(0, keys - 1)}`;
      if (draw < 0.5) return get(key);
      if (draw < 0.85) {
        const n = (written.get(client) ?? 0) + 1;
        written.set(client, n);
        const value = `c${client}.${n}`;
        return {
          cmd: ['config-key', 'set', key, value],
          input: { op: 'put', key, value },
          output: done,
          label: `set ${key}`,
          sentLabel: `set ${key} ${value}`,
        };
      }
      return { cmd: ['config-key', 'rm', key], input: { op: 'rm', key }, output: done, label: `rm ${key}` };
    },
    finalReads: () => Array.from({ length: keys }, (_, k) => get(`k${k}`)),
    finalReadsLine: 'reading every key',
  };
}
