// Test helpers for src/verify (not exported from mod.ts): random trees of (p, q) rows, the blocks
// drawn from them, and exact enumeration of every block with its probability.
import { Random } from "../random.ts";
import type { BlockProposal, BlockScores } from "./types.ts";

/** How {@linkcode RowTree} draws its rows. */
export interface RowTreeOptions {
  /**
   * Probability that a token gets probability 0 in a row (at least one token always keeps mass).
   * @default {0.2}
   */
  mask?: number;
  /**
   * Standard deviation of the logits (larger: more peaked rows).
   * @default {1.5}
   */
  scale?: number;
  /**
   * Draft rows equal to the target rows (p = q).
   * @default {false}
   */
  same?: boolean;
}

function randomRow(rng: Random, vocab: number, mask: number, scale: number): Float64Array {
  const row = new Float64Array(vocab);
  let sum = 0;
  for (let x = 0; x < vocab; x++) {
    row[x] = rng.next() < mask ? 0 : Math.exp(scale * rng.normal());
    sum += row[x];
  }
  if (sum === 0) row[Math.floor(rng.next() * vocab)] = sum = 1;
  for (let x = 0; x < vocab; x++) row[x] /= sum;
  return row;
}

/**
 * A target p and a draft q for every context (prefix of the block), drawn at random on first use
 * and then fixed: a toy "language model" whose rows depend on the whole prefix.
 */
export class RowTree {
  readonly vocab: number;
  readonly #rng: Random;
  readonly #options: Required<RowTreeOptions>;
  readonly #rows = new Map<string, { p: Float64Array; q: Float64Array }>();

  constructor(vocab: number, seed: number, options: RowTreeOptions = {}) {
    this.vocab = vocab;
    this.#rng = new Random(seed);
    this.#options = { mask: 0.2, scale: 1.5, same: false, ...options };
  }

  #row(prefix: ArrayLike<number>) {
    const key = Array.from(prefix).join(",");
    let rows = this.#rows.get(key);
    if (!rows) {
      const { mask, scale, same } = this.#options;
      const p = randomRow(this.#rng, this.vocab, mask, scale);
      rows = { p, q: same ? p : randomRow(this.#rng, this.vocab, mask, scale) };
      this.#rows.set(key, rows);
    }
    return rows;
  }

  /** Target row after `prefix`. */
  p(prefix: ArrayLike<number>): Float64Array {
    return this.#row(prefix).p;
  }

  /** Draft row after `prefix`. */
  q(prefix: ArrayLike<number>): Float64Array {
    return this.#row(prefix).q;
  }
}

/** A block as a verifier sees it, for fixed drafts over a row tree. */
export interface TreeBlock {
  proposal: BlockProposal;
  scores: BlockScores;
}

/** The proposal and target scores of the fixed drafts `drafts[r][t]` (all of length L). */
export function treeBlock(tree: RowTree, drafts: number[][]): TreeBlock {
  const L = drafts[0].length;
  const tokens = drafts.map((d) => Int32Array.from(d));
  const probs = drafts.map((d) => Array.from({ length: L }, (_, t) => tree.q(d.slice(0, t))));
  return {
    proposal: { k: drafts.length, draftLength: L, tokens, probs },
    scores: { probs: (row, depth) => tree.p(drafts[row].slice(0, depth)) },
  };
}

/** Draws k i.i.d. drafts of length L from the tree's q (inverse CDF with the given uniforms). */
export function drawDrafts(tree: RowTree, k: number, L: number, rng: Random): number[][] {
  const drafts: number[][] = [];
  for (let r = 0; r < k; r++) {
    const d: number[] = [];
    for (let t = 0; t < L; t++) {
      const q = tree.q(d);
      const u = rng.next();
      let c = 0, x = 0;
      for (; x < q.length - 1; x++) {
        c += q[x];
        if (q[x] > 0 && u < c) break;
      }
      while (!(q[x] > 0)) x--; // rounding at the top end: the last token with mass
      d.push(x);
    }
    drafts.push(d);
  }
  return drafts;
}

/**
 * Every set of k i.i.d. drafts of length L the tree's q can produce, with its probability
 * Π_r Π_t q(x_{r,t} | x_{r,<t}) (V^(kL) sets; the impossible ones are skipped).
 */
export function* allDrafts(
  tree: RowTree,
  k: number,
  L: number,
): Generator<{ drafts: number[][]; probability: number }> {
  const V = tree.vocab, n = k * L;
  const digits = new Array<number>(n).fill(0);
  for (let s = 0; s < V ** n; s++) {
    let rest = s;
    for (let i = 0; i < n; i++) {
      digits[i] = rest % V;
      rest = Math.floor(rest / V);
    }
    const drafts: number[][] = [];
    let probability = 1;
    for (let r = 0; r < k && probability > 0; r++) {
      const d = digits.slice(r * L, r * L + L);
      for (let t = 0; t < L; t++) probability *= tree.q(d.slice(0, t))[d[t]];
      drafts.push(d);
    }
    if (probability > 0) yield { drafts, probability };
  }
}

/**
 * Checks that a distribution over whole block outputs (token sequences, at least one token each)
 * is exact for the tree's target: for every prefix s and token y,
 * P(output starts with s·y) = (P(output starts with s) − P(output = s))·p(y | s). Returns the largest
 * absolute violation.
 */
export function exactnessError(tree: RowTree, outputs: Map<string, number>): number {
  const starts = new Map<string, number>(); // P(output starts with s), s as "a,b,c" ("" = empty)
  for (const [key, probability] of outputs) {
    const tokens = key.split(",");
    for (let i = 0; i <= tokens.length; i++) {
      const s = tokens.slice(0, i).join(",");
      starts.set(s, (starts.get(s) ?? 0) + probability);
    }
  }
  let worst = 0;
  for (const [s, startProbability] of starts) {
    const prefix = s === "" ? [] : s.split(",").map(Number);
    const continues = startProbability - (s === "" ? 0 : outputs.get(s) ?? 0);
    if (continues <= 1e-15) continue;
    const p = tree.p(prefix);
    for (let y = 0; y < tree.vocab; y++) {
      const next = starts.get(s === "" ? `${y}` : `${s},${y}`) ?? 0;
      worst = Math.max(worst, Math.abs(next - continues * p[y]));
    }
  }
  return worst;
}
