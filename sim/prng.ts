// The simulator's one source of randomness (TigerBeetle's VOPR, FoundationDB's deterministic
// random): xoshiro128** seeded through splitmix32, so a printed SEED= replays a run exactly.
// No dependencies and no Math.random: the same seed gives the same stream on every platform.

/** splitmix32 (Vigna): spreads a 32-bit seed over the state; also our hash-mixing step. */
function splitmix32(state: number): [value: number, next: number] {
  const next = (state + 0x9e3779b9) | 0;
  let z = next;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  z ^= z >>> 16;
  return [z >>> 0, next];
}

/** FNV-1a over UTF-16 code units, folded through splitmix32: a string seed or fork label → 32 bits. */
function hashString(text: string, basis = 0x811c9dc5): number {
  let hash = basis >>> 0;
  for (let index = 0; index < text.length; index++) {
    hash ^= text.charCodeAt(index);
    hash = Math.imul(hash, 0x01000193);
  }
  return splitmix32(hash)[0];
}

function seedToNumber(seed: number | string): number {
  if (typeof seed === 'string') return hashString(seed);
  if (!Number.isFinite(seed)) throw new RangeError(`Prng seed must be finite, got ${seed}`);
  // Keep all 53 bits of an integer seed distinct rather than truncating to the low 32.
  const low = seed >>> 0;
  const high = Math.floor(seed / 0x1_0000_0000) >>> 0;
  return (splitmix32(low ^ splitmix32(high)[0])[0] ^ high) >>> 0;
}

export class Prng {
  /** The seed this stream was built from (forks record theirs too), for SEED= lines. */
  readonly seed: number;
  #s0 = 0;
  #s1 = 0;
  #s2 = 0;
  #s3 = 0;

  constructor(seed: number | string) {
    this.seed = seedToNumber(seed);
    let state = this.seed;
    const words: number[] = [];
    for (let index = 0; index < 4; index++) {
      const [value, next] = splitmix32(state);
      words.push(value);
      state = next;
    }
    [this.#s0, this.#s1, this.#s2, this.#s3] = words as [number, number, number, number];
    // xoshiro's all-zero state is a fixed point; splitmix32 makes it practically impossible,
    // but a stuck generator would silently ruin a simulation, so rule it out.
    if ((this.#s0 | this.#s1 | this.#s2 | this.#s3) === 0) this.#s0 = 0x9e3779b9;
  }

  /** The next 32 random bits as an unsigned integer (xoshiro128**). */
  uint32(): number {
    const result = Math.imul(rotl(Math.imul(this.#s1, 5), 7), 9) >>> 0;
    const t = this.#s1 << 9;
    this.#s2 ^= this.#s0;
    this.#s3 ^= this.#s1;
    this.#s1 ^= this.#s2;
    this.#s0 ^= this.#s3;
    this.#s2 ^= t;
    this.#s3 = rotl(this.#s3, 11);
    return result;
  }

  /** A float in [0, 1) with 32 bits of randomness. */
  next(): number {
    return this.uint32() / 0x1_0000_0000;
  }

  /** An integer in [lo, hi], both ends inclusive (TigerBeetle's int_inclusive). */
  int(lo: number, hi: number): number {
    if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi) || hi < lo) {
      throw new RangeError(`Prng.int needs integers lo <= hi, got ${lo}, ${hi}`);
    }
    const span = hi - lo + 1;
    if (span <= 0x1_0000_0000) {
      // Rejection sampling: plain modulo would favour low values when span does not divide 2^32.
      const limit = 0x1_0000_0000 - (0x1_0000_0000 % span);
      let value = this.uint32();
      while (value >= limit) value = this.uint32();
      return lo + (value % span);
    }
    // Wider than 32 bits: combine two draws into 53 bits; bias is below 2^-20 for safe integers.
    const wide = (this.uint32() >>> 11) * 0x1_0000_0000 + this.uint32();
    return lo + (wide % span);
  }

  /** True with probability p (p <= 0 never, p >= 1 always; no draw is wasted on either). */
  chance(p: number): boolean {
    if (p <= 0) return false;
    if (p >= 1) return true;
    return this.next() < p;
  }

  /** A uniformly chosen element; throws on an empty array (a caller bug, not bad luck). */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('Prng.pick from an empty array');
    return items[this.int(0, items.length - 1)] as T;
  }

  /**
   * An independent stream named by `label`, derived from this stream's seed and not from its
   * current position: drawing more numbers in one subsystem never perturbs another's fork, so a
   * change in (say) the network's fault draws leaves the storage faults of the same seed intact.
   * The same label forked twice gives the same stream — use distinct labels.
   */
  fork(label: string): Prng {
    return new Prng(hashString(label, this.seed ^ 0x5bd1e995));
  }
}

function rotl(value: number, bits: number): number {
  return (value << bits) | (value >>> (32 - bits));
}
