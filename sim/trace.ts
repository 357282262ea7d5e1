// A run's trace: every line (network events, monitor state changes, faults, client operations)
// goes into a running 64-bit hash, and the last few are kept for the report of a failing seed.
// Same seed ⇒ same lines ⇒ same hash: the simulator prints it last and a spec compares two runs.

/** Lines kept for a failure report (the simulator prints the last `--trace-lines` of them). */
export const TRACE_LINES_KEPT_MAX = 1000;

export class Trace {
  /** FNV-1a over UTF-16 code units in two independent 32-bit lanes (different offset bases). */
  #low = 0x811c9dc5;
  #high = 0x01000193 ^ 0x9e3779b9;
  #lines: string[] = [];
  #start = 0;
  #count = 0;
  readonly #keep: number;
  readonly #echo: ((line: string) => void) | undefined;

  constructor(keep = 200, echo?: (line: string) => void) {
    this.#keep = Math.max(1, Math.min(keep, TRACE_LINES_KEPT_MAX));
    this.#echo = echo;
  }

  /** Lines recorded so far. */
  get count(): number {
    return this.#count;
  }

  record(line: string): void {
    let low = this.#low;
    let high = this.#high;
    for (let index = 0; index < line.length; index++) {
      const code = line.charCodeAt(index);
      low = Math.imul(low ^ code, 0x01000193);
      high = Math.imul(high ^ code, 0x01000193) ^ (high >>> 15);
    }
    // A line separator, so ['ab', 'c'] and ['a', 'bc'] hash differently.
    this.#low = Math.imul(low ^ 0x0a, 0x01000193);
    this.#high = Math.imul(high ^ 0x0a, 0x01000193) ^ (high >>> 15);
    this.#count++;
    if (this.#lines.length < this.#keep) this.#lines.push(line);
    else {
      this.#lines[this.#start] = line;
      this.#start = (this.#start + 1) % this.#keep;
    }
    this.#echo?.(line);
  }

  /** 16 hex digits. */
  hash(): string {
    return (this.#high >>> 0).toString(16).padStart(8, '0') + (this.#low >>> 0).toString(16).padStart(8, '0');
  }

  /** The last `count` lines, oldest first. */
  last(count: number): string[] {
    const ordered = [...this.#lines.slice(this.#start), ...this.#lines.slice(0, this.#start)];
    return ordered.slice(Math.max(0, ordered.length - count));
  }
}

/** Simulated milliseconds as seconds with three decimals, fixed width: `  12.345`. */
export function stamp(ms: number): string {
  return (ms / 1000).toFixed(3).padStart(8, ' ');
}
