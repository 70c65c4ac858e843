/**
 * Seeded uniform random numbers (xoshiro128**, seeded through splitmix32). Every decision in the
 * kernel and the reference is driven by uniforms from here, so both make identical decisions and
 * every run with the same seed is reproducible.
 *
 * @module
 */

/** Largest seed a generation takes: the uniforms' generator is seeded with 32 bits. */
export const MAX_SEED: number = 2 ** 32 - 1;

/**
 * A seeded generator of float64 uniforms in [0, 1) with 53 random bits.
 *
 * @example
 * ```ts
 * import { Random } from "./random.ts";
 * import assert from "node:assert/strict";
 * const a = new Random(7), b = new Random(7);
 * assert.equal(a.next(), b.next());
 * ```
 */
export class Random {
  #s = new Uint32Array(4);

  /**
   * Seeds a new generator.
   *
   * @param seed Any finite number; its integer part (mod 2^32) seeds the state.
   * @throws {RangeError} seed is not a finite number.
   */
  constructor(seed: number) {
    if (typeof seed !== "number" || !Number.isFinite(seed)) {
      throw new RangeError(`Cannot seed Random: seed must be a finite number, got ${seed}`);
    }
    let x = (Math.trunc(seed) >>> 0) ^ 0x9e3779b9;
    for (let i = 0; i < 4; i++) {
      // splitmix32
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.#s[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }

  /** Next 32 random bits as an unsigned integer. */
  nextUint32(): number {
    const s = this.#s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Next uniform in [0, 1), 53 random bits. */
  next(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Next standard normal draw (Box–Muller over two uniforms; the first mapped to (0, 1]). */
  normal(): number {
    const u = 1 - this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }

  /** Fills `out` with uniforms in [0, 1) and returns it. */
  fill<T extends Float64Array | number[]>(out: T): T {
    for (let i = 0; i < out.length; i++) out[i] = this.next();
    return out;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
