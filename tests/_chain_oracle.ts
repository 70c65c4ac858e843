/**
 * The oracle of the sequence-level exactness tests: the exact probability of every continuation of a
 * prompt under a warped Markov chain, computed with a plain softmax written for the tests
 * (independent of the kernel under test).
 *
 * @module
 */

import type { WarpOptions } from "../src/kernel/types.ts";

/** A Markov chain's target: its logits table, order, vocabulary and the prompt continued. */
export interface ChainTarget {
  /** Logits `[vocab^order, vocab]`. */
  table: Float32Array;
  order: 1 | 2;
  vocab: number;
  prompt: readonly number[];
}

/** Plain softmax with temperature and top-k (ties at the boundary kept). */
export function warpedRow(logits: ArrayLike<number>, warp: WarpOptions): number[] {
  const t = warp.temperature ?? 1;
  const z = Array.from(logits, (x) => x / t);
  const topK = warp.topK ?? 0;
  if (topK > 0 && topK < z.length) {
    const threshold = [...z].sort((a, b) => b - a)[topK - 1];
    for (let i = 0; i < z.length; i++) if (z[i] < threshold) z[i] = -Infinity;
  }
  const max = Math.max(...z);
  const e = z.map((x) => Math.exp(x - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / sum);
}

/**
 * Exact probabilities of every length-`length` continuation of the prompt under the warped chain,
 * indexed by the continuation read as a base-`vocab` number (first token most significant).
 */
export function sequenceProbabilities(chain: ChainTarget, warp: WarpOptions, length: number): Float64Array {
  const { vocab, order, table } = chain;
  const out = new Float64Array(vocab ** length);
  for (let s = 0; s < out.length; s++) {
    const seq = [...chain.prompt];
    let prob = 1;
    for (let i = 0; i < length; i++) {
      const x = Math.floor(s / vocab ** (length - 1 - i)) % vocab;
      const n = seq.length;
      const row = order === 1 ? seq[n - 1] : seq[n - 2] * vocab + seq[n - 1];
      prob *= warpedRow(table.subarray(row * vocab, row * vocab + vocab), warp)[x];
      seq.push(x);
    }
    out[s] = prob;
  }
  return out;
}
