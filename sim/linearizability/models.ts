// Sequential models for the checker: a key/value map (paxmon's config-key service; Porcupine's
// kv histories), a single read/write/compare-and-set register (Jepsen's etcd test; Knossos's
// cas-register model, knossos/model.clj) and a counter (the README's custom service).
import type { Model, Operation } from './checker.ts';

// --- Key/value ---------------------------------------------------------------------------------

export type KvOp = 'get' | 'put' | 'append' | 'rm';

export interface KvInput {
  readonly op: KvOp;
  readonly key: string;
  /** The value written by put or appended by append; unused by get and rm. */
  readonly value?: string;
}

/** Only a get's output is checked: `value` is what it read, `undefined` for a missing key (ENOENT). */
export interface KvOutput {
  readonly value: string | undefined;
}

/**
 * One key's value (`undefined` when the key is missing, only with `missing: 'undefined'`) and a
 * polynomial hash of it, kept incrementally: appends make values thousands of characters long,
 * and a hash of only part of the value (say its tail) collides for every order of the same
 * appends, so the memo cache's buckets would fill with states that differ only in the middle.
 */
export interface KvState {
  readonly value: string | undefined;
  readonly hash: number;
}

export interface KvModelOptions {
  /**
   * How a missing key reads. `'empty'` (the default; Porcupine's kv model): as '', so a get
   * returning '' or `undefined` both match a missing or empty key, and rm sets ''. `'undefined'`
   * (paxmon's config-key get, which answers ENOENT): a missing key reads as `undefined`, which is
   * distinct from a key holding ''.
   */
  readonly missing?: 'empty' | 'undefined';
}

/** Characters of a value kept in descriptions; appended values grow long. */
const DESCRIBE_VALUE_CHARS_MAX = 40;
/** The polynomial hash's base (odd, so multiplying by it mod 2^32 loses nothing). */
const HASH_BASE = 0x9e3779b1;

/** Horner's rule over UTF-16 code units, continuing from `hash`: hash(s + t) = extend(hash(s), t). */
function extendHash(hash: number, text: string): number {
  let h = hash;
  for (let i = 0; i < text.length; i++) h = (Math.imul(h, HASH_BASE) + text.charCodeAt(i)) | 0;
  return h;
}

function kvState(value: string | undefined): KvState {
  return { value, hash: value === undefined ? -1 : extendHash(0, value) };
}

/**
 * A key/value map, checked one key at a time: `partition` splits the history by key (P-
 * compositionality), and the state is that one key's value. The checker always partitions when
 * a model can, so the state never has to hold more than one key.
 */
export function kvModel(options: KvModelOptions = {}): Model<KvState, KvInput, KvOutput> {
  const missingReadsEmpty = (options.missing ?? 'empty') === 'empty';
  const missing = kvState(missingReadsEmpty ? '' : undefined);
  return {
    init: () => missing,
    step(state, input, output) {
      switch (input.op) {
        case 'get': {
          if (output === undefined) return { ok: true, state };
          const read = missingReadsEmpty ? (output.value ?? '') : output.value;
          return { ok: read === state.value, state };
        }
        case 'put':
          return { ok: true, state: kvState(input.value ?? '') };
        case 'append': {
          const suffix = input.value ?? '';
          const hash = extendHash(state.value === undefined ? 0 : state.hash, suffix);
          return { ok: true, state: { value: (state.value ?? '') + suffix, hash } };
        }
        case 'rm':
          return { ok: true, state: missing };
      }
    },
    equal: (a, b) => a.hash === b.hash && a.value === b.value,
    hash: (state) => state.hash,
    partition: (ops) => partitionBy(ops, (op) => op.input.key),
    describe(op) {
      const { op: name, key, value } = op.input;
      const argument = name === 'put' || name === 'append' ? `, ${quote(value ?? '')}` : '';
      const result = op.output === undefined ? '?' : name === 'get' ? quoteOrMissing(op.output.value) : 'ok';
      return `client ${op.clientId} [${op.call}, ${op.return}] ${name}(${quote(key)}${argument}) -> ${result}`;
    },
  };
}

function quoteOrMissing(value: string | undefined): string {
  return value === undefined ? 'ENOENT' : quote(value);
}

function quote(value: string): string {
  if (value.length <= DESCRIBE_VALUE_CHARS_MAX) return JSON.stringify(value);
  return `…${JSON.stringify(value.slice(value.length - DESCRIBE_VALUE_CHARS_MAX))} (${value.length} chars)`;
}

/** Group operations by a key, keeping history order within a group and first-seen order of groups. */
export function partitionBy<Input, Output, Key>(
  ops: readonly Operation<Input, Output>[],
  keyOf: (op: Operation<Input, Output>) => Key,
): Operation<Input, Output>[][] {
  const groups = new Map<Key, Operation<Input, Output>[]>();
  for (const op of ops) {
    const key = keyOf(op);
    const group = groups.get(key);
    if (group === undefined) groups.set(key, [op]);
    else group.push(op);
  }
  return [...groups.values()];
}

// --- Register ----------------------------------------------------------------------------------

/** Jepsen's register values are integers, and `nil` (here `null`) before the first write. */
export type RegisterValue = number | string | null;

export type RegisterInput =
  | { readonly op: 'read' }
  | { readonly op: 'write'; readonly value: RegisterValue }
  | { readonly op: 'cas'; readonly from: RegisterValue; readonly to: RegisterValue };

/**
 * A read's output carries `value`; a cas's `ok` says whether it swapped (a Jepsen `:fail` cas
 * is one that returned false: the compare failed). A write's output is `{ ok: true }`.
 */
export interface RegisterOutput {
  readonly ok: boolean;
  readonly value?: RegisterValue;
}

export interface RegisterModelOptions {
  /** The value before any write; Jepsen etcd's register starts missing (nil). */
  readonly initial?: RegisterValue;
}

/** One register with read, write and compare-and-set, as Knossos's cas-register. */
export function registerModel(
  options: RegisterModelOptions = {},
): Model<RegisterValue, RegisterInput, RegisterOutput> {
  const initial = options.initial ?? null;
  return {
    init: () => initial,
    step(state, input, output) {
      switch (input.op) {
        case 'read':
          // A read output without a value read nil (Jepsen leaves :value nil for a missing key).
          return { ok: output === undefined || (output.value ?? null) === state, state };
        case 'write':
          return { ok: true, state: input.value };
        case 'cas': {
          const matches = state === input.from;
          // Unknown outcome: it swapped iff the compare held when it took effect.
          if (output === undefined) return { ok: true, state: matches ? input.to : state };
          if (output.ok) return { ok: matches, state: input.to };
          return { ok: !matches, state };
        }
      }
    },
    equal: (a, b) => a === b,
    hash: (state) => (state === null ? 'nil' : state),
    describe(op) {
      const { input, output } = op;
      const call =
        input.op === 'read'
          ? 'read'
          : input.op === 'write'
            ? `write(${show(input.value)})`
            : `cas(${show(input.from)}, ${show(input.to)})`;
      const result =
        output === undefined
          ? '?'
          : input.op === 'read'
            ? show(output.value ?? null)
            : input.op === 'cas'
              ? String(output.ok)
              : 'ok';
      return `client ${op.clientId} [${op.call}, ${op.return}] ${call} -> ${result}`;
    },
  };
}

function show(value: RegisterValue): string {
  return value === null ? 'nil' : JSON.stringify(value);
}

// --- Counter -----------------------------------------------------------------------------------

/** Add a whole number (negative too) or read the total. */
export type CounterInput = { readonly op: 'add'; readonly n: number } | { readonly op: 'get' };

/**
 * What a get read, or what an add answered: the total just after it (omit `value` for an add
 * whose answer says nothing, and only its effect is checked).
 */
export interface CounterOutput {
  readonly value?: number;
}

export interface CounterModelOptions {
  /** The total before any add (default 0). */
  readonly initial?: number;
}

/**
 * A counter: `add(n)` adds and may answer the new total, `get` reads it. An add with an unknown
 * outcome may or may not have been applied — the search tries both places for it.
 */
export function counterModel(options: CounterModelOptions = {}): Model<number, CounterInput, CounterOutput> {
  const initial = options.initial ?? 0;
  return {
    init: () => initial,
    step(state, input, output) {
      if (input.op === 'get') return { ok: output?.value === undefined || output.value === state, state };
      const next = state + input.n;
      return { ok: output?.value === undefined || output.value === next, state: next };
    },
    equal: (a, b) => a === b,
    hash: (state) => state,
    describe(op) {
      const call = op.input.op === 'get' ? 'get' : `add(${op.input.n})`;
      const result = op.output === undefined ? '?' : (op.output.value ?? 'ok');
      return `client ${op.clientId} [${op.call}, ${op.return}] ${call} -> ${result}`;
    },
  };
}
