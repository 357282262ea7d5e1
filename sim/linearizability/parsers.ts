// Parsers for the public reference histories in spec/fixtures/porcupine (copied from
// Porcupine's test_data, github.com/anishathalye/porcupine): Jepsen EDN history lines
// (`{:process 0, :type :invoke, :f :append, :key "0", :value "x 0 0 y"}`) for the kv
// histories, and Jepsen's log lines (`INFO  jepsen.util - 0	:invoke	:read	nil`) for the etcd
// register histories.
//
// Jepsen's completion types (knossos.history; Kingsbury, "Jepsen" docs, "Histories"):
//   :ok   the operation took effect, with this result;
//   :fail the operation certainly did not take effect, so it is dropped (except a failed cas,
//         which by default stays as a cas whose compare failed: see EtcdParseOptions);
//   :info the outcome is unknown: it may take effect at any time after its call, so its return
//         is at infinity. A read with an unknown outcome has no effect and is dropped, as is an
//         invocation that never completes.
// Time is the line's index in the file; each completion belongs to the pending invocation of
// its process (a Jepsen process runs one operation at a time).
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Operation } from './checker.ts';
import { OPERATIONS_MAX } from './checker.ts';
import type { KvInput, KvOp, KvOutput, RegisterInput, RegisterOutput, RegisterValue } from './models.ts';

/** Longest line accepted: these histories' lines are well under 1 KB. */
export const LINE_CHARS_MAX = 1 << 20;
/** Deepest nesting of EDN collections accepted. */
const EDN_DEPTH_MAX = 32;

export class HistoryParseError extends Error {
  constructor(
    readonly file: string,
    readonly lineNumber: number,
    reason: string,
  ) {
    super(`${file}:${lineNumber}: ${reason}`);
    this.name = 'HistoryParseError';
  }
}

// --- EDN ---------------------------------------------------------------------------------------

export interface Keyword {
  readonly keyword: string;
}

/** The EDN subset Jepsen histories use (edn-format.org). A map's keys must be keywords. */
export type EdnValue = null | boolean | number | string | Keyword | EdnValue[] | Map<string, EdnValue>;

/** Parse one EDN value filling `text` (surrounding whitespace and commas allowed). */
export function parseEdn(text: string): EdnValue {
  const parser = new EdnParser(text);
  const value = parser.value(0);
  parser.skipSpace();
  if (parser.position < text.length)
    throw new SyntaxError(`unexpected ${JSON.stringify(text.slice(parser.position))}`);
  return value;
}

class EdnParser {
  position = 0;
  constructor(private readonly text: string) {}

  skipSpace(): void {
    // Commas are whitespace in EDN.
    while (this.position < this.text.length && /[\s,]/.test(this.text.charAt(this.position))) this.position++;
  }

  value(depth: number): EdnValue {
    if (depth > EDN_DEPTH_MAX) throw new SyntaxError(`nested deeper than ${EDN_DEPTH_MAX}`);
    this.skipSpace();
    const c = this.text.charAt(this.position);
    if (c === '') throw new SyntaxError('unexpected end of input');
    if (c === '"') return this.string();
    if (c === '[' || c === '(') return this.sequence(c === '[' ? ']' : ')', depth);
    if (c === '{') return this.map(depth);
    if (c === ':') return { keyword: this.symbol(this.position + 1) };
    const token = this.symbol(this.position);
    if (token === 'nil') return null;
    if (token === 'true' || token === 'false') return token === 'true';
    if (/^[+-]?\d+N?$/.test(token)) {
      const n = Number(token.replace(/N$/, ''));
      if (!Number.isSafeInteger(n)) throw new SyntaxError(`integer ${token} is outside the safe range`);
      return n;
    }
    if (/^[+-]?\d+(\.\d*)?([eE][+-]?\d+)?M?$/.test(token)) return Number(token.replace(/M$/, ''));
    throw new SyntaxError(`unexpected ${JSON.stringify(token || c)}`);
  }

  private symbol(start: number): string {
    let end = start;
    while (end < this.text.length && !/[\s,"[\](){}]/.test(this.text.charAt(end))) end++;
    const token = this.text.slice(start, end);
    if (token === '') throw new SyntaxError(`empty symbol at column ${start + 1}`);
    this.position = end;
    return token;
  }

  private string(): string {
    let out = '';
    let i = this.position + 1;
    for (;;) {
      const c = this.text.charAt(i);
      if (c === '') throw new SyntaxError('unterminated string');
      if (c === '"') break;
      if (c === '\\') {
        const e = this.text.charAt(i + 1);
        const escaped: Record<string, string> = {
          '"': '"',
          '\\': '\\',
          n: '\n',
          t: '\t',
          r: '\r',
          b: '\b',
          f: '\f',
        };
        if (e === 'u') {
          const hex = this.text.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) throw new SyntaxError(`bad unicode escape \\u${hex}`);
          out += String.fromCharCode(Number.parseInt(hex, 16));
          i += 6;
          continue;
        }
        const replacement = escaped[e];
        if (replacement === undefined) throw new SyntaxError(`bad escape \\${e}`);
        out += replacement;
        i += 2;
        continue;
      }
      out += c;
      i++;
    }
    this.position = i + 1;
    return out;
  }

  private sequence(close: string, depth: number): EdnValue[] {
    this.position++;
    const items: EdnValue[] = [];
    for (;;) {
      this.skipSpace();
      if (this.text.charAt(this.position) === close) break;
      items.push(this.value(depth + 1));
    }
    this.position++;
    return items;
  }

  private map(depth: number): Map<string, EdnValue> {
    this.position++;
    const entries = new Map<string, EdnValue>();
    for (;;) {
      this.skipSpace();
      if (this.text.charAt(this.position) === '}') break;
      const key = this.value(depth + 1);
      if (!isKeyword(key)) throw new SyntaxError('map keys must be keywords');
      if (entries.has(key.keyword)) throw new SyntaxError(`duplicate key :${key.keyword}`);
      entries.set(key.keyword, this.value(depth + 1));
    }
    this.position++;
    return entries;
  }
}

export function isKeyword(value: EdnValue | undefined): value is Keyword {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Map);
}

// --- Jepsen events to operations ---------------------------------------------------------------

export type JepsenType = 'invoke' | 'ok' | 'fail' | 'info';

/** One line of a Jepsen history. */
export interface JepsenEvent {
  readonly process: number;
  readonly type: JepsenType;
  readonly f: string;
  readonly value: EdnValue;
  /** The kv histories' `:key`; undefined when the line has none. */
  readonly key: EdnValue | undefined;
  /** 0-based line index: the event's time. */
  readonly lineIndex: number;
}

/** An invocation and its completion (undefined when the history ends first). */
export interface JepsenPair {
  readonly invoke: JepsenEvent;
  readonly completion: JepsenEvent | undefined;
}

/** Pair each completion with its process's pending invocation, in invocation order. */
export function pairJepsenEvents(events: readonly JepsenEvent[], file: string): JepsenPair[] {
  const pairs: { invoke: JepsenEvent; completion: JepsenEvent | undefined }[] = [];
  const pending = new Map<number, (typeof pairs)[number]>();
  for (const event of events) {
    const open = pending.get(event.process);
    if (event.type === 'invoke') {
      if (open !== undefined) {
        throw new HistoryParseError(
          file,
          event.lineIndex + 1,
          `process ${event.process} invokes while its invocation on line ${open.invoke.lineIndex + 1} is pending`,
        );
      }
      if (pairs.length >= OPERATIONS_MAX) {
        throw new HistoryParseError(file, event.lineIndex + 1, `more than ${OPERATIONS_MAX} operations`);
      }
      const pair = { invoke: event, completion: undefined };
      pairs.push(pair);
      pending.set(event.process, pair);
      continue;
    }
    if (open === undefined) {
      throw new HistoryParseError(
        file,
        event.lineIndex + 1,
        `:${event.type} for process ${event.process}, which has no pending invocation`,
      );
    }
    if (open.invoke.f !== event.f) {
      throw new HistoryParseError(
        file,
        event.lineIndex + 1,
        `:${event.type} :${event.f} completes process ${event.process}'s :${open.invoke.f} (line ${open.invoke.lineIndex + 1})`,
      );
    }
    open.completion = event;
    pending.delete(event.process);
  }
  return pairs;
}

/** What a completion means for the checker: a result at a time, unknown, or did not happen. */
type Outcome = 'ok' | 'fail' | 'unknown';

function outcomeOf(pair: JepsenPair): Outcome {
  const type = pair.completion?.type;
  return type === 'ok' ? 'ok' : type === 'fail' ? 'fail' : 'unknown';
}

// --- kv histories (c*-ok.txt, c*-bad.txt) ------------------------------------------------------

const KV_OPS: readonly string[] = ['get', 'put', 'append', 'rm'] satisfies KvOp[];

/** Parse a Jepsen EDN kv history, one `{...}` map per line; blank lines are skipped. */
export function parseJepsenKvHistory(text: string, file = '<kv history>'): Operation<KvInput, KvOutput>[] {
  const events: JepsenEvent[] = [];
  forEachLine(text, file, (line, lineIndex) => {
    if (line.trim() === '') return;
    const fail = (reason: string): never => {
      throw new HistoryParseError(file, lineIndex + 1, reason);
    };
    let parsed: EdnValue;
    try {
      parsed = parseEdn(line);
    } catch (error) {
      return fail(`malformed EDN: ${(error as Error).message}`);
    }
    if (!(parsed instanceof Map)) return fail('expected an EDN map {:process ..., :type ..., :f ...}');
    const event = jepsenEventOf(parsed, lineIndex, fail);
    if (!KV_OPS.includes(event.f)) fail(`unknown :f :${event.f} (expected one of ${KV_OPS.join(', ')})`);
    if (typeof event.key !== 'string') fail(':key must be a string');
    if (
      (event.f === 'put' || event.f === 'append') &&
      event.type === 'invoke' &&
      typeof event.value !== 'string'
    ) {
      fail(`:${event.f} needs a string :value`);
    }
    if (event.f === 'get' && event.type === 'ok' && event.value !== null && typeof event.value !== 'string') {
      fail(':ok :get needs a string or nil :value');
    }
    events.push(event);
  });
  const ops: Operation<KvInput, KvOutput>[] = [];
  for (const pair of pairJepsenEvents(events, file)) {
    const outcome = outcomeOf(pair);
    const { invoke, completion } = pair;
    const op = invoke.f as KvOp;
    if (outcome === 'fail' || (outcome === 'unknown' && op === 'get')) continue;
    const key = invoke.key as string;
    const input: KvInput =
      op === 'put' || op === 'append' ? { op, key, value: invoke.value as string } : { op, key };
    const base = { clientId: invoke.process, input, call: invoke.lineIndex };
    if (outcome === 'unknown' || completion === undefined) {
      ops.push({ ...base, output: undefined, return: Number.POSITIVE_INFINITY });
      continue;
    }
    const value = op === 'get' ? ((completion.value as string | null) ?? undefined) : undefined;
    ops.push({ ...base, output: { value }, return: completion.lineIndex });
  }
  return ops;
}

// --- etcd register histories (etcd_NNN.log) ----------------------------------------------------

export interface EtcdParseOptions {
  /**
   * A cas that completes `:fail` returned false: its compare failed, so it did not swap.
   * `'compare-failed'` (the default, as Porcupine's etcd model) keeps it as a completed cas that
   * returned false, which the model accepts only where the register did not hold `from`;
   * `'drop'` (Knossos's reading of every `:fail`) removes it from the history.
   */
  readonly failedCas?: 'compare-failed' | 'drop';
}

// `INFO  jepsen.util - <process> <type> <f> <value>`, tab- or space-separated (etcd_100..102 use
// spaces). Other log lines (the test's setup chatter) are not part of the history.
const ETCD_LINE = /^\s*\S+\s+jepsen\.util\s+-\s+/;
const ETCD_FIELDS = /^(\d+)\s+:(invoke|ok|fail|info)\s+:(read|write|cas)(?:\s+(.*?))?\s*$/;

/** Parse a Jepsen etcd log into register operations. An empty log is an empty history. */
export function parseJepsenEtcdLog(
  text: string,
  file = '<etcd log>',
  options: EtcdParseOptions = {},
): Operation<RegisterInput, RegisterOutput>[] {
  const dropFailedCas = options.failedCas === 'drop';
  const events: JepsenEvent[] = [];
  forEachLine(text, file, (line, lineIndex) => {
    const prefix = ETCD_LINE.exec(line);
    if (prefix === null) return;
    const fail = (reason: string): never => {
      throw new HistoryParseError(file, lineIndex + 1, reason);
    };
    const rest = line.slice(prefix[0].length);
    // The nemesis (a keyword process, `:nemesis`) logs here too, but is not a client of the register.
    if (rest.startsWith(':')) return;
    const fields = ETCD_FIELDS.exec(rest);
    if (fields === null) return fail(`expected "<process> :<invoke|ok|fail|info> :<read|write|cas> <value>"`);
    const [, processText = '', type = '', f = '', valueText = 'nil'] = fields;
    let value: EdnValue;
    try {
      value = parseEdn(valueText);
    } catch (error) {
      return fail(`malformed value ${JSON.stringify(valueText)}: ${(error as Error).message}`);
    }
    const event: JepsenEvent = {
      process: Number(processText),
      type: type as JepsenType,
      f,
      value,
      key: undefined,
      lineIndex,
    };
    // Only an invocation's argument and an :ok result are used; a :fail or :info carries an
    // error (`:timed-out`) or a copy of the argument.
    if (type === 'ok' || (type === 'invoke' && f !== 'read')) {
      const shape = f === 'cas' ? isCasPair(value) : isRegisterValue(value);
      if (!shape) fail(`bad :${f} value ${valueText}`);
    }
    events.push(event);
  });
  const ops: Operation<RegisterInput, RegisterOutput>[] = [];
  for (const pair of pairJepsenEvents(events, file)) {
    const outcome = outcomeOf(pair);
    const { invoke, completion } = pair;
    const f = invoke.f;
    if (outcome === 'fail' && !(f === 'cas' && !dropFailedCas)) continue;
    if (outcome === 'unknown' && f === 'read') continue;
    let input: RegisterInput;
    if (f === 'read') input = { op: 'read' };
    else if (f === 'write') input = { op: 'write', value: invoke.value as RegisterValue };
    else {
      const [from = null, to = null] = invoke.value as RegisterValue[];
      input = { op: 'cas', from, to };
    }
    const base = { clientId: invoke.process, input, call: invoke.lineIndex };
    if (outcome === 'unknown' || completion === undefined) {
      ops.push({ ...base, output: undefined, return: Number.POSITIVE_INFINITY });
      continue;
    }
    const output: RegisterOutput =
      f === 'read' ? { ok: true, value: completion.value as RegisterValue } : { ok: outcome === 'ok' };
    ops.push({ ...base, output, return: completion.lineIndex });
  }
  return ops;
}

function isRegisterValue(value: EdnValue): value is RegisterValue {
  return value === null || typeof value === 'number' || typeof value === 'string';
}

function isCasPair(value: EdnValue): value is RegisterValue[] {
  return Array.isArray(value) && value.length === 2 && value.every(isRegisterValue);
}

/** `etcd-expected.txt`: `<file number> <true|false>` per line; true = linearizable. */
export function parseEtcdExpected(text: string, file = 'etcd-expected.txt'): Map<number, boolean> {
  const expected = new Map<number, boolean>();
  forEachLine(text, file, (line, lineIndex) => {
    if (line.trim() === '') return;
    const match = /^\s*(\d+)\s+(true|false)\s*$/.exec(line);
    if (match === null) throw new HistoryParseError(file, lineIndex + 1, 'expected "<number> <true|false>"');
    const number = Number(match[1]);
    if (expected.has(number))
      throw new HistoryParseError(file, lineIndex + 1, `duplicate verdict for ${number}`);
    expected.set(number, match[2] === 'true');
  });
  return expected;
}

// --- Jepsen EDN map fields ---------------------------------------------------------------------

function jepsenEventOf(
  map: Map<string, EdnValue>,
  lineIndex: number,
  fail: (reason: string) => never,
): JepsenEvent {
  const process = map.get('process');
  const type = map.get('type');
  const f = map.get('f');
  if (typeof process !== 'number' || !Number.isSafeInteger(process))
    return fail(':process must be an integer');
  if (!isKeyword(type) || !['invoke', 'ok', 'fail', 'info'].includes(type.keyword)) {
    return fail(':type must be :invoke, :ok, :fail or :info');
  }
  if (!isKeyword(f)) return fail(':f must be a keyword');
  return {
    process,
    type: type.keyword as JepsenType,
    f: f.keyword,
    value: map.get('value') ?? null,
    key: map.get('key'),
    lineIndex,
  };
}

function forEachLine(text: string, file: string, visit: (line: string, lineIndex: number) => void): void {
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.length > LINE_CHARS_MAX)
      throw new HistoryParseError(file, i + 1, `line longer than ${LINE_CHARS_MAX} characters`);
    visit(line, i);
  }
}

// --- The porcupine fixture directory -----------------------------------------------------------

/**
 * The reference histories: `$PAXMON_PORCUPINE_DIR` if set, else the copy kept in the repo (so a
 * clean CI clone has them) at spec/fixtures/porcupine.
 */
export function porcupineDir(): string {
  const override = process.env.PAXMON_PORCUPINE_DIR;
  if (override !== undefined && override !== '') return override;
  return fileURLToPath(new URL('../../spec/fixtures/porcupine/', import.meta.url));
}

export type PorcupineHistory =
  | {
      readonly kind: 'kv';
      readonly name: string;
      readonly linearizable: boolean;
      readonly ops: Operation<KvInput, KvOutput>[];
    }
  | {
      readonly kind: 'etcd';
      readonly name: string;
      /** Undefined when etcd-expected.txt has no verdict for this file. */
      readonly linearizable: boolean | undefined;
      readonly ops: Operation<RegisterInput, RegisterOutput>[];
    };

/** Every history in the directory, kv files first, each in name order. Throws if the directory is missing. */
export function loadPorcupineHistories(
  dir = porcupineDir(),
  options: EtcdParseOptions = {},
): PorcupineHistory[] {
  const names = readdirSync(dir).sort();
  const read = (name: string): string => readFileSync(`${dir.replace(/\/$/, '')}/${name}`, 'utf8');
  const histories: PorcupineHistory[] = [];
  for (const name of names) {
    const kv = /^c\d+-(ok|bad)\.txt$/.exec(name);
    if (kv === null) continue;
    histories.push({
      kind: 'kv',
      name,
      linearizable: kv[1] === 'ok',
      ops: parseJepsenKvHistory(read(name), name),
    });
  }
  const expected = parseEtcdExpected(read('etcd-expected.txt'));
  for (const name of names) {
    const etcd = /^etcd_(\d+)\.log$/.exec(name);
    if (etcd === null) continue;
    const linearizable = expected.get(Number(etcd[1]));
    histories.push({ kind: 'etcd', name, linearizable, ops: parseJepsenEtcdLog(read(name), name, options) });
  }
  return histories;
}
