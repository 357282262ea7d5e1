// Coverage marks (FoundationDB's CODE_PROBE): the simulator counts the rare paths a run reached —
// a lease timeout, a paxos round finishing a previous value, a crash that lost unsynced writes —
// so a soak shows what it exercised, and a spec can demand that a path was hit at all.

export class Coverage {
  readonly #counts = new Map<string, number>();

  mark(name: string, times = 1): void {
    this.#counts.set(name, (this.#counts.get(name) ?? 0) + times);
  }

  count(name: string): number {
    return this.#counts.get(name) ?? 0;
  }

  /** Add another run's marks (a multi-seed soak sums them). */
  merge(other: Coverage): void {
    for (const [name, count] of other.entries()) this.mark(name, count);
  }

  entries(): [name: string, count: number][] {
    return [...this.#counts.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  /** One `count  name` line per mark, sorted by name; `seeds` adds how many seeds reached each. */
  format(seedsReached?: Map<string, number>): string[] {
    return this.entries().map(([name, count]) => {
      const seeds = seedsReached?.get(name);
      return `${String(count).padStart(9)}  ${name}${seeds === undefined ? '' : `  (${seeds} seeds)`}`;
    });
  }
}
