// A linearizability checker: is there a total order of a history's operations that respects
// real time (an operation that returned before another was called comes first) and that a
// sequential model accepts? (Herlihy & Wing, "Linearizability: A Correctness Condition for
// Concurrent Objects", TOPLAS 1990.)
//
// The search is Wing & Gong's ("Testing and Verifying Concurrent Objects", JPDC 1993): walk the
// history's call/return entries in time order; at a call, try to linearize that operation now
// (step the model, then "lift" its call and return entries out of the list); at a return whose
// operation has not been linearized yet, backtrack. Lowe's memoisation ("Testing for
// linearizability", CCPE 2017) prunes a branch whose (set of linearized operations, model
// state) pair has been reached before. The entry list, lift/unlift and the cache keyed by the
// bitset's hash with state equality follow Porcupine (github.com/anishathalye/porcupine,
// checker.go: makeLinkedEntries, lift, unlift, cacheContains, checkSingle).
//
// P-compositionality (Horn & Kroening, "Faster linearizability checking via
// P-compositionality", FORTE 2015): when the model's state splits into independent parts (a
// key/value store by key), a history is linearizable iff each part's sub-history is, so each
// partition is searched on its own; the search is exponential in the size of what it searches.
//
// An operation whose outcome is unknown (a Jepsen `:info` completion, a client timeout) has
// `output: undefined` and `return: Infinity`: it may take effect at any point after its call.
// "Never took effect" needs no special case: its return entry sorts after every other, so the
// search may linearize it last, after everything that could have observed it.

/** One operation of a history: what a client asked, when, and what it saw. */
export interface Operation<Input, Output> {
  readonly clientId: number;
  readonly input: Input;
  /** When the client invoked it (any monotone clock: a line number, a simulated time). */
  readonly call: number;
  /** What it returned; `undefined` when unknown (the model must then accept any outcome). */
  readonly output: Output | undefined;
  /** When the client saw the result; `Infinity` when it never did (it may or may not have happened). */
  readonly return: number;
}

export interface StepResult<State> {
  /** Whether the model, in `state`, can produce this output for this input. */
  readonly ok: boolean;
  /** The state after the operation (meaningful only when `ok`). */
  readonly state: State;
}

/** A sequential specification. States must be immutable values: the search keeps old ones. */
export interface Model<State, Input, Output> {
  init(): State;
  /** `output` is `undefined` when the outcome is unknown: accept it and apply the input's effect. */
  step(state: State, input: Input, output: Output | undefined): StepResult<State>;
  /**
   * Whether two states are the same. Default: the same primitive, or the same canonical JSON
   * (object keys sorted) — right for states that are plain data.
   */
  equal?(a: State, b: State): boolean;
  /**
   * Consistent with `equal` (equal states hash equal); cheap, as it runs on every step. Default:
   * a number or string state itself, anything else its canonical JSON.
   */
  hash?(state: State): string | number;
  /** Split a history into sub-histories that can be checked independently (P-compositionality). */
  partition?(ops: readonly Operation<Input, Output>[]): Operation<Input, Output>[][];
  describe?(op: Operation<Input, Output>): string;
}

export interface CheckOptions {
  /**
   * The most model steps to take over all partitions before giving up with `unknown`. A count,
   * not a wall-clock timeout, so that a verdict is reproducible.
   */
  stepsMax?: number;
  /**
   * The most memory, in bytes, the memo cache of one partition may take (about 4 bytes per 32
   * operations of the partition plus 24 per entry; at most one entry per step) before giving up
   * with `unknown`. Also deterministic. Keeps a large step bound from exhausting memory.
   */
  cacheBytesMax?: number;
}

export type Verdict = 'ok' | 'illegal' | 'unknown';

export interface CheckResult<Input, Output> {
  /** `unknown` only when `stepsMax` or `cacheBytesMax` was reached before a verdict. */
  readonly result: Verdict;
  readonly partitions: number;
  /** Model steps taken, over all partitions searched. */
  readonly steps: number;
  /** Index (into the model's partition) of the partition that was illegal, or where the step bound hit. */
  readonly failedPartition?: number;
  /** For an illegal partition: the longest sequence of its operations that the search linearized. */
  readonly longestLinearizedPrefix?: Operation<Input, Output>[];
  /**
   * For an illegal partition: the operations that could have come next after that prefix (those
   * not in it that were called before any of the others returned) — none of which the model
   * accepts there. The non-linearizable window.
   */
  readonly nextCandidates?: Operation<Input, Output>[];
}

/** Default step bound: the largest reference history (etcd_002) takes 1.2 million. */
export const STEPS_MAX_DEFAULT = 20_000_000;
/** Default memo cache bound per partition: c50-ok's largest partition needs under 16 MB. */
export const CACHE_BYTES_MAX_DEFAULT = 1 << 30;
/** Most operations in one history; beyond this the exponential search is hopeless anyway. */
export const OPERATIONS_MAX = 1_000_000;

export function checkOperations<State, Input, Output>(
  model: Model<State, Input, Output>,
  ops: readonly Operation<Input, Output>[],
  options: CheckOptions = {},
): CheckResult<Input, Output> {
  const stepsMax = options.stepsMax ?? STEPS_MAX_DEFAULT;
  if (!(stepsMax >= 0)) throw new RangeError(`stepsMax must be >= 0, got ${stepsMax}`);
  const cacheBytesMax = options.cacheBytesMax ?? CACHE_BYTES_MAX_DEFAULT;
  if (!(cacheBytesMax >= 0)) throw new RangeError(`cacheBytesMax must be >= 0, got ${cacheBytesMax}`);
  if (ops.length > OPERATIONS_MAX) {
    throw new RangeError(`history has ${ops.length} operations, more than ${OPERATIONS_MAX}`);
  }
  ops.forEach(validateOperation);
  const partitions = model.partition ? model.partition(ops) : [ops.slice()];
  const equal = model.equal?.bind(model) ?? defaultEqual;
  const hash = model.hash?.bind(model) ?? defaultHash;
  // Smallest partitions first: an illegal small one is then found before a large one spends the
  // step budget. The reported index stays the model's.
  const order = partitions.map((_, i) => i).sort((a, b) => sizeOf(partitions, a) - sizeOf(partitions, b));
  let steps = 0;
  for (const index of order) {
    const partition = partitions[index] ?? [];
    const single = checkSingle(model, equal, hash, partition, stepsMax - steps, cacheBytesMax);
    steps += single.steps;
    if (single.result === 'ok') continue;
    const failed = { result: single.result, partitions: partitions.length, steps, failedPartition: index };
    if (single.result === 'unknown') return failed;
    const prefix = Array.from(single.longest, (i) => partition[i] as Operation<Input, Output>);
    return { ...failed, longestLinearizedPrefix: prefix, nextCandidates: nextCandidates(partition, prefix) };
  }
  return { result: 'ok', partitions: partitions.length, steps };
}

/** A multi-line account of a failed check, for test and simulator failure messages. */
export function describeResult<State, Input, Output>(
  model: Model<State, Input, Output>,
  result: CheckResult<Input, Output>,
  linesMax = 50,
): string {
  const lines = [`${result.result} (${result.partitions} partitions, ${result.steps} steps)`];
  if (result.failedPartition !== undefined) lines.push(`partition ${result.failedPartition}`);
  const prefix = result.longestLinearizedPrefix;
  if (prefix) {
    lines.push(`longest linearized prefix (${prefix.length} operations):`);
    const describe = model.describe?.bind(model) ?? describeDefault;
    const shown = prefix.length > linesMax ? prefix.slice(prefix.length - linesMax) : prefix;
    if (shown.length < prefix.length) lines.push(`  ... ${prefix.length - shown.length} earlier`);
    for (const op of shown) lines.push(`  ${describe(op)}`);
  }
  const candidates = result.nextCandidates;
  if (candidates?.length) {
    lines.push(`none of these can come next (${candidates.length} operations):`);
    const describe = model.describe?.bind(model) ?? describeDefault;
    for (const op of candidates.slice(0, linesMax)) lines.push(`  ${describe(op)}`);
    if (candidates.length > linesMax) lines.push(`  ... ${candidates.length - linesMax} more`);
  }
  return lines.join('\n');
}

/** The operations not in `prefix` that were called before the earliest return among them. */
function nextCandidates<Input, Output>(
  partition: readonly Operation<Input, Output>[],
  prefix: readonly Operation<Input, Output>[],
): Operation<Input, Output>[] {
  const done = new Set(prefix);
  const rest = partition.filter((op) => !done.has(op));
  let firstReturn = Number.POSITIVE_INFINITY;
  for (const op of rest) if (op.return < firstReturn) firstReturn = op.return;
  return rest.filter((op) => op.call <= firstReturn).sort((a, b) => a.call - b.call);
}

/** JSON with object keys sorted, so equal plain-data states have one text. */
export function canonicalJson(value: unknown): string {
  return (
    JSON.stringify(value, (_key, v: unknown) => {
      if (v === undefined) return null;
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
      if (v instanceof Map) return { map: [...v.entries()].sort() };
      if (v instanceof Set) return { set: [...v.values()].sort() };
      const sorted: Record<string, unknown> = {};
      for (const key of Object.keys(v).sort()) sorted[key] = (v as Record<string, unknown>)[key];
      return sorted;
    }) ?? 'undefined'
  );
}

function defaultEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  return canonicalJson(a) === canonicalJson(b);
}

function defaultHash(state: unknown): string | number {
  if (typeof state === 'number' || typeof state === 'string') return state;
  return canonicalJson(state);
}

function describeDefault(op: Operation<unknown, unknown>): string {
  const output = op.output === undefined ? '?' : JSON.stringify(op.output);
  return `client ${op.clientId} [${op.call}, ${op.return}] ${JSON.stringify(op.input)} -> ${output}`;
}

function sizeOf(partitions: readonly (readonly unknown[])[], i: number): number {
  return partitions[i]?.length ?? 0;
}

function validateOperation(op: Operation<unknown, unknown>, i: number): void {
  if (!Number.isFinite(op.call)) throw new RangeError(`operation ${i}: call time ${op.call} is not finite`);
  // Infinity is allowed: the outcome is unknown. NaN fails the comparison.
  if (!(op.return >= op.call)) {
    throw new RangeError(`operation ${i}: return time ${op.return} is before call time ${op.call}`);
  }
}

interface SingleResult {
  readonly result: Verdict;
  readonly steps: number;
  /** Operation indices (into the partition) of the longest linearization found, when illegal. */
  readonly longest: Int32Array;
}

/**
 * Lowe's memo cache: the set of (linearized operations, state) pairs already explored. A hash
 * table with chaining over typed arrays rather than a Map of arrays of entries: each entry's
 * bitset lives in one growing arena instead of its own Uint32Array (an object apiece, which
 * costs more than the bits), and a Map tops out at 2^24 entries, fewer than a large step bound
 * can insert.
 */
class MemoCache<State> {
  /** Bytes per entry besides its bitset: key, chain link, state reference and table slot. */
  private static readonly ENTRY_BYTES = 24;
  private static readonly CAPACITY_MIN = 1024;
  private table = new Int32Array(MemoCache.CAPACITY_MIN).fill(-1);
  private bits: Uint32Array;
  private nexts: Int32Array;
  private keys: Int32Array;
  private readonly states: State[] = [];
  private count = 0;
  private readonly entriesMax: number;

  constructor(
    private readonly words: number,
    private readonly equal: (a: State, b: State) => boolean,
    bytesMax: number,
  ) {
    this.entriesMax = Math.floor(bytesMax / (words * 4 + MemoCache.ENTRY_BYTES));
    const capacity = Math.max(1, Math.min(MemoCache.CAPACITY_MIN, this.entriesMax));
    this.bits = new Uint32Array(capacity * words);
    this.nexts = new Int32Array(capacity);
    this.keys = new Int32Array(capacity);
  }

  /** Whether `add` would pass the byte bound. */
  get full(): boolean {
    return this.count >= this.entriesMax;
  }

  /** Whether (linearized, state) is cached; `key` is their combined hash. */
  contains(key: number, linearized: Uint32Array, state: State): boolean {
    const words = this.words;
    const bits = this.bits;
    for (let e = this.table[key & (this.table.length - 1)] as number; e !== -1; e = this.nexts[e] as number) {
      if (this.keys[e] !== key) continue;
      let same = true;
      for (let w = 0, base = e * words; w < words; w++) {
        if (bits[base + w] !== linearized[w]) {
          same = false;
          break;
        }
      }
      if (same && this.equal(this.states[e] as State, state)) return true;
    }
    return false;
  }

  add(key: number, linearized: Uint32Array, state: State): void {
    const e = this.count;
    if (e === this.nexts.length) this.grow();
    this.bits.set(linearized, e * this.words);
    this.keys[e] = key;
    this.states.push(state);
    const slot = key & (this.table.length - 1);
    this.nexts[e] = this.table[slot] as number;
    this.table[slot] = e;
    this.count++;
    // Keep chains short: one slot per entry.
    if (this.count > this.table.length) this.rehash(this.table.length * 2);
  }

  private grow(): void {
    const capacity = Math.min(this.nexts.length * 2, Math.max(this.entriesMax, 1));
    const bits = new Uint32Array(capacity * this.words);
    bits.set(this.bits);
    this.bits = bits;
    const nexts = new Int32Array(capacity);
    nexts.set(this.nexts);
    this.nexts = nexts;
    const keys = new Int32Array(capacity);
    keys.set(this.keys);
    this.keys = keys;
  }

  private rehash(slots: number): void {
    const table = new Int32Array(slots).fill(-1);
    for (let e = 0; e < this.count; e++) {
      const slot = (this.keys[e] as number) & (slots - 1);
      this.nexts[e] = table[slot] as number;
      table[slot] = e;
    }
    this.table = table;
  }
}

// Porcupine's checkSingle, over typed arrays: node 0 is the list head; nodes 1..2n are the
// call and return entries in time order. For a call node, `match` is its return node; for a
// return node it is -1. `next`/`prev` of -1 mean none.
function checkSingle<State, Input, Output>(
  model: Model<State, Input, Output>,
  equal: (a: State, b: State) => boolean,
  hash: (state: State) => string | number,
  ops: readonly Operation<Input, Output>[],
  stepsMax: number,
  cacheBytesMax: number,
): SingleResult {
  const n = ops.length;
  const empty = new Int32Array(0);
  if (n === 0) return { result: 'ok', steps: 0, longest: empty };

  // Entries sorted by time; at equal times calls come first (so operations that touch are
  // concurrent, as in Porcupine's byTime), then by operation index for determinism.
  const events = new Int32Array(2 * n); // 2*op for the call, 2*op+1 for the return
  for (let i = 0; i < 2 * n; i++) events[i] = i;
  const timeOf = (event: number): number => {
    const op = ops[event >> 1] as Operation<Input, Output>;
    return event & 1 ? op.return : op.call;
  };
  events.sort((a, b) => {
    const ta = timeOf(a);
    const tb = timeOf(b);
    if (ta !== tb) return ta < tb ? -1 : 1;
    if ((a & 1) !== (b & 1)) return (a & 1) - (b & 1);
    return a - b;
  });

  const size = 2 * n + 1;
  const next = new Int32Array(size);
  const prev = new Int32Array(size);
  const match = new Int32Array(size).fill(-1);
  const opOf = new Int32Array(size).fill(-1);
  const returnNodeOf = new Int32Array(n);
  for (let k = 0; k < 2 * n; k++) {
    const event = events[k] as number;
    const node = k + 1;
    opOf[node] = event >> 1;
    if (event & 1) returnNodeOf[event >> 1] = node;
    prev[node] = node - 1;
    next[node] = node + 1 < size ? node + 1 : -1;
  }
  next[0] = 1;
  prev[0] = -1;
  for (let node = 1; node < size; node++) {
    const event = events[node - 1] as number;
    if (!(event & 1)) match[node] = returnNodeOf[event >> 1] as number;
  }

  const inputs = ops.map((op) => op.input);
  const outputs = ops.map((op) => op.output);

  // The set of linearized operations, with an incrementally maintained Zobrist hash (Zobrist,
  // "A new hashing method with application for game playing", 1970): one pseudo-random word per
  // operation, XORed in and out, so hashing the set costs O(1) instead of O(n/32).
  const words = (n + 31) >>> 5;
  const linearized = new Uint32Array(words);
  let linearizedHash = 0;
  const zobrist = new Int32Array(n);
  for (let i = 0; i < n; i++) zobrist[i] = mix32(i + 1);

  const cache = new MemoCache<State>(words, equal, cacheBytesMax);

  // The stack of linearized calls (Porcupine's `calls`): the call node and the state before it.
  const callNodes = new Int32Array(n);
  const callStates: State[] = [];
  let depth = 0;
  const longest = new Int32Array(n);
  let longestLength = 0;

  let state = model.init();
  let steps = 0;
  let entry = next[0] as number;
  while (next[0] !== -1) {
    const matchNode = match[entry] as number;
    if (matchNode !== -1) {
      // A call: try to linearize its operation here.
      if (steps >= stepsMax) return { result: 'unknown', steps, longest: empty };
      steps++;
      const op = opOf[entry] as number;
      const stepped = model.step(state, inputs[op] as Input, outputs[op]);
      let lifted = false;
      if (stepped.ok) {
        const word = op >>> 5;
        const bit = 1 << (op & 31);
        linearized[word] = (linearized[word] as number) | bit;
        const setHash = linearizedHash ^ (zobrist[op] as number);
        const key = (setHash ^ Math.imul(hashState(hash(stepped.state)), 0x9e3779b1)) | 0;
        if (cache.contains(key, linearized, stepped.state)) {
          linearized[word] = (linearized[word] as number) & ~bit;
        } else {
          if (cache.full) return { result: 'unknown', steps, longest: empty };
          cache.add(key, linearized, stepped.state);
          callNodes[depth] = entry;
          callStates[depth] = state;
          depth++;
          state = stepped.state;
          linearizedHash = setHash;
          // lift: unlink the call and its return.
          next[prev[entry] as number] = next[entry] as number;
          prev[next[entry] as number] = prev[entry] as number;
          next[prev[matchNode] as number] = next[matchNode] as number;
          if (next[matchNode] !== -1) prev[next[matchNode] as number] = prev[matchNode] as number;
          lifted = true;
          entry = next[0] as number;
        }
      }
      if (!lifted) entry = next[entry] as number;
    } else {
      // A return whose operation is not linearized: every order from here fails; backtrack.
      if (depth === 0) return { result: 'illegal', steps, longest: longest.slice(0, longestLength) };
      if (depth > longestLength) {
        for (let i = 0; i < depth; i++) longest[i] = opOf[callNodes[i] as number] as number;
        longestLength = depth;
      }
      depth--;
      entry = callNodes[depth] as number;
      state = callStates[depth] as State;
      callStates[depth] = undefined as State; // let the state be collected
      const op = opOf[entry] as number;
      linearized[op >>> 5] = (linearized[op >>> 5] as number) & ~(1 << (op & 31));
      linearizedHash ^= zobrist[op] as number;
      // unlift: relink the return, then the call (the reverse of lift).
      const back = match[entry] as number;
      next[prev[back] as number] = back;
      if (next[back] !== -1) prev[next[back] as number] = back;
      next[prev[entry] as number] = entry;
      prev[next[entry] as number] = entry;
      entry = next[entry] as number;
    }
  }
  return { result: 'ok', steps, longest: empty };
}

/** A 32-bit hash of a model's state hash (a number or a string). */
function hashState(h: string | number): number {
  if (typeof h === 'number') {
    if (Number.isInteger(h) && Math.abs(h) <= Number.MAX_SAFE_INTEGER) {
      return mix32((h | 0) ^ Math.imul(Math.floor(h / 4294967296) | 0, 0x85ebca6b));
    }
    return hashString(String(h));
  }
  return hashString(h);
}

/** FNV-1a over UTF-16 code units. */
function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h | 0;
}

/** MurmurHash3's fmix32 finaliser: a cheap, deterministic scramble of a 32-bit integer. */
function mix32(x: number): number {
  let h = x | 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}
