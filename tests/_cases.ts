/**
 * Shared (p, q) configurations for the statistical tests. p is the target row, q the draft row,
 * k the number of candidates, V the vocabulary size. Rows are either written out (for exact zeros,
 * disjoint supports and other corner cases) or made from seeded logits through `kernel.warp`.
 *
 * @module
 */

import { Random } from "../src/random.ts";
import type { Kernel, Probs, WarpOptions } from "../src/kernel/types.ts";

/** One (p, q, k) configuration of the token-level exactness test. */
export interface TokenCase {
  /** Short unique name, printed in the result table. */
  name: string;
  /** Vocabulary size. */
  vocab: number;
  /** Number of candidates per verification (capped at |supp q| for drafts without replacement). */
  k: number;
  /**
   * Large vocabulary: run on the fastest kernel only, at these draw counts instead of the full
   * count (a verifier call costs O(V): input checks, copies and the ρ* solve run per call), unless
   * the environment sets SPECTR_FULL_STATS=1. Reduced runs are marked in the printed table.
   */
  large?: { wasmDraws: number; referenceDraws: number };
  /** Builds p (target) and q (draft) `[vocab]`, through `kernel.warp` where logits are involved. */
  rows(kernel: Kernel): { p: Probs; q: Probs };
}

/** `weights` normalised to sum 1, as float64. */
export function normalise(weights: ArrayLike<number>): Float64Array {
  let sum = 0;
  for (let i = 0; i < weights.length; i++) sum += weights[i];
  const out = new Float64Array(weights.length);
  for (let i = 0; i < weights.length; i++) out[i] = weights[i] / sum;
  return out;
}

/** Standard normal variates from a seeded generator (Box-Muller). */
export function normals(seed: number, n: number, scale = 1): Float32Array {
  const rand = new Random(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = scale * rand.normal();
  return out;
}

/** `base` plus seeded Gaussian noise of standard deviation `noise`: a draft close to the target. */
export function perturbed(base: Float32Array, seed: number, noise: number): Float32Array {
  const eps = normals(seed, base.length, noise);
  return base.map((x, i) => x + eps[i]);
}

/** Logits shaped like a language model's: a Zipf-like decay over a seeded permutation, plus noise. */
export function zipfLogits(seed: number, vocab: number, slope = 1.1, noise = 0.5): Float32Array {
  const rand = new Random(seed);
  const order = Array.from({ length: vocab }, (_, i) => i);
  for (let i = vocab - 1; i > 0; i--) {
    const j = Math.floor(rand.next() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const eps = normals(seed + 1, vocab, noise);
  const out = new Float32Array(vocab);
  for (let r = 0; r < vocab; r++) out[order[r]] = -slope * Math.log(r + 1) + eps[r];
  return out;
}

function fixed(p: number[], q: number[]): (kernel: Kernel) => { p: Probs; q: Probs } {
  return () => ({ p: normalise(p), q: normalise(q) });
}

function warped(
  target: Float32Array,
  draft: Float32Array,
  targetWarp: WarpOptions,
  draftWarp: WarpOptions = targetWarp,
): (kernel: Kernel) => { p: Probs; q: Probs } {
  return (kernel) => ({ p: kernel.warp(target, targetWarp), q: kernel.warp(draft, draftWarp) });
}

const uniform = (n: number) => Array.from({ length: n }, () => 1);

/**
 * The token-level configurations: V from 2 to 50,257, k from 1 to 8; identical, near-identical,
 * disjoint, peaked, flat and partially overlapping rows; q = 0 where p > 0 and the reverse; rows
 * warped from logits with temperatures ≠ 1, top-k and top-p.
 */
export const TOKEN_CASES: TokenCase[] = [
  { name: "identical-2", vocab: 2, k: 1, rows: fixed([0.3, 0.7], [0.3, 0.7]) },
  { name: "disjoint-2", vocab: 2, k: 2, rows: fixed([1, 0], [0, 1]) },
  { name: "near-identical-3", vocab: 3, k: 3, rows: fixed([0.2, 0.3, 0.5], [0.21, 0.29, 0.5]) },
  {
    name: "k-exceeds-vocab-3",
    vocab: 3,
    k: 8,
    rows: fixed([0.6, 0.3, 0.1], [0.1, 0.3, 0.6]),
  },
  {
    // q = 0 where p > 0 (tokens 0, 1) and p = 0 where q > 0 (tokens 3, 4).
    name: "partial-overlap-5",
    vocab: 5,
    k: 2,
    rows: fixed([0.4, 0.3, 0.3, 0, 0], [0, 0, 0.2, 0.3, 0.5]),
  },
  { name: "p-zero-where-q-4", vocab: 4, k: 4, rows: fixed([0.5, 0.5, 0, 0], uniform(4)) },
  { name: "q-zero-where-p-4", vocab: 4, k: 3, rows: fixed(uniform(4), [0.5, 0.5, 0, 0]) },
  {
    name: "peaked-target-flat-draft-8",
    vocab: 8,
    k: 5,
    rows: fixed([0.93, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01], uniform(8)),
  },
  {
    name: "flat-target-peaked-draft-8",
    vocab: 8,
    k: 8,
    rows: fixed(uniform(8), [0.6, 0.2, 0.1, 0.05, 0.02, 0.015, 0.01, 0.005]),
  },
  {
    name: "random-6-k1",
    vocab: 6,
    k: 1,
    rows: fixed([0.05, 0.3, 0.15, 0.1, 0.25, 0.15], [0.2, 0.1, 0.3, 0.05, 0.05, 0.3]),
  },
  {
    name: "greedy-target-10",
    vocab: 10,
    k: 2,
    rows: warped(normals(101, 10, 2), normals(102, 10, 2), { temperature: 0 }, { temperature: 0.7 }),
  },
  {
    name: "logits-T0.7-12",
    vocab: 12,
    k: 2,
    rows: ((base) => warped(base, perturbed(base, 112, 0.8), { temperature: 0.7 }))(normals(111, 12, 1.5)),
  },
  {
    name: "logits-T0.7-16",
    vocab: 16,
    k: 4,
    rows: warped(normals(121, 16, 1.5), normals(122, 16, 1.5), { temperature: 0.7 }),
  },
  {
    name: "identical-T1.3-24",
    vocab: 24,
    k: 7,
    rows: ((base) => warped(base, base, { temperature: 1.3 }))(normals(131, 24, 1.5)),
  },
  {
    name: "topk8-T1.5-32",
    vocab: 32,
    k: 6,
    rows: ((base) => warped(base, perturbed(base, 142, 1), { temperature: 1.5, topK: 8 }))(
      normals(141, 32, 2),
    ),
  },
  {
    name: "topp0.9-T0.5-50",
    vocab: 50,
    k: 3,
    rows: ((base) => warped(base, perturbed(base, 152, 1), { temperature: 0.5, topP: 0.9 }))(
      zipfLogits(151, 50),
    ),
  },
  {
    name: "flat-T2-50",
    vocab: 50,
    k: 8,
    rows: warped(normals(161, 50, 1), normals(162, 50, 1), { temperature: 2 }),
  },
  {
    // Different truncations: p keeps 10 tokens, q its own nucleus; the supports overlap partly.
    name: "topk10-vs-topp0.8-64",
    vocab: 64,
    k: 4,
    rows: ((base) =>
      warped(base, perturbed(base, 172, 1.5), { temperature: 0.8, topK: 10 }, {
        temperature: 1.2,
        topP: 0.8,
      }))(
        zipfLogits(171, 64, 0.8),
      ),
  },
  {
    name: "draft-wider-topk5-20",
    vocab: 20,
    k: 1,
    rows:
      ((base) =>
        warped(base, perturbed(base, 182, 0.7), { topK: 5, temperature: 0.9 }, { temperature: 0.9 }))(
          normals(181, 20, 1.5),
        ),
  },
  {
    name: "zipf-T1.2-1000",
    vocab: 1000,
    k: 4,
    large: { wasmDraws: 100_000, referenceDraws: 10_000 },
    rows: ((base) => warped(base, perturbed(base, 192, 0.6), { temperature: 1.2 }))(zipfLogits(191, 1000)),
  },
  {
    name: "topk40-T0.8-4096",
    vocab: 4096,
    k: 3,
    large: { wasmDraws: 100_000, referenceDraws: 10_000 },
    rows: ((base) => warped(base, perturbed(base, 202, 0.6), { temperature: 0.8, topK: 40 }))(
      zipfLogits(201, 4096),
    ),
  },
  {
    name: "topp0.95-T0.7-32000",
    vocab: 32000,
    k: 2,
    large: { wasmDraws: 100_000, referenceDraws: 2_000 },
    rows: ((base) => warped(base, perturbed(base, 212, 0.5), { temperature: 0.7, topP: 0.95 }))(
      zipfLogits(211, 32000, 1.3),
    ),
  },
  {
    name: "topk50-50257-k1",
    vocab: 50257,
    k: 1,
    large: { wasmDraws: 100_000, referenceDraws: 2_000 },
    rows: ((base) => warped(base, perturbed(base, 222, 0.8), { topK: 50 }))(zipfLogits(221, 50257, 1.2)),
  },
  {
    name: "full-T1.5-50257",
    vocab: 50257,
    k: 4,
    large: { wasmDraws: 100_000, referenceDraws: 300 },
    rows: ((base) => warped(base, perturbed(base, 232, 0.5), { temperature: 1.5 }))(
      zipfLogits(231, 50257, 1.2),
    ),
  },
];

/**
 * The exact output distribution `[vocab]` of a K-SEQ-shaped rule with k i.i.d. candidates from q:
 * accept X_i (in order) with probability min(1, p(X_i)/(ρ q(X_i))), else draw `residual`. With
 * b = Σ_x min(q(x), p(x)/ρ): out(x) = min(q(x), p(x)/ρ)·(1 − (1 − b)^k)/b + (1 − b)^k·residual(x).
 * Used to show the deliberately wrong verifiers are wrong on the power-check configurations.
 */
export function kseqShapedOutput(
  p: Probs,
  q: Probs,
  k: number,
  rho: number,
  residual: ArrayLike<number>,
): Float64Array {
  let b = 0;
  for (let x = 0; x < p.length; x++) if (q[x] > 0) b += Math.min(q[x], p[x] / rho);
  const factor = b > 0 ? (1 - (1 - b) ** k) / b : k;
  const out = new Float64Array(p.length);
  for (let x = 0; x < p.length; x++) {
    out[x] = (q[x] > 0 ? Math.min(q[x], p[x] / rho) : 0) * factor + (1 - b) ** k * residual[x];
  }
  return out;
}

/** Total variation distance between two rows. */
export function totalVariation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d += Math.abs(a[i] - b[i]);
  return d / 2;
}

/** One small random case of the optimality test: V ≤ 6, k ∈ {2, 3}. */
export interface SmallCase {
  vocab: number;
  k: number;
  p: Float64Array;
  q: Float64Array;
  /** Whether some entries of p or q were zeroed. */
  sparse: boolean;
}

/**
 * `count` seeded random small cases: V in [2, 6], k in {2, 3}; rows from exponentials raised to a
 * random power (flat to peaked); every third case zeroes some entries of p and/or q (keeping at
 * least one non-zero entry in each).
 */
export function smallCases(seed: number, count: number): SmallCase[] {
  const rand = new Random(seed);
  const row = (vocab: number) => {
    const power = 0.3 + 2.7 * rand.next();
    return Array.from({ length: vocab }, () => (-Math.log(1 - rand.next())) ** power);
  };
  const sparsify = (w: number[]) => {
    for (let i = 0; i < w.length; i++) if (rand.next() < 0.35) w[i] = 0;
    if (!w.some((x) => x > 0)) w[Math.floor(rand.next() * w.length)] = 1;
    return w;
  };
  const cases: SmallCase[] = [];
  for (let c = 0; c < count; c++) {
    const vocab = 2 + Math.floor(rand.next() * 5);
    const k = c % 2 === 0 ? 2 : 3;
    let p = row(vocab);
    let q = row(vocab);
    const sparse = c % 3 === 2;
    if (sparse) {
      const which = Math.floor(rand.next() * 3); // 0: p, 1: q, 2: both
      if (which !== 1) p = sparsify(p);
      if (which !== 0) q = sparsify(q);
    }
    cases.push({ vocab, k, p: normalise(p), q: normalise(q), sparse });
  }
  return cases;
}

/**
 * Exact probability that SpecInfer's recursive rule accepts one of its k candidates, computed
 * from the rule's definition (not by sampling, not through the kernel). A candidate x at step i is
 * accepted with probability min(1, p_i(x)/q_i(x)); after a rejection, p_{i+1} = norm(max(p_i − q_i, 0))
 * (kept as p_i when that has no mass). I.i.d. candidates (q_i = q): p_i does not depend on the
 * rejected tokens, so acceptance = 1 − Π_i (1 − Σ_x min(q(x), p_i(x))). Without replacement, q_{i+1}
 * is q_i without the rejected token, renormalised: the rejected tokens are enumerated depth-first.
 *
 * @returns The acceptance probability, or `undefined` when the enumeration would exceed `maxNodes`
 *   rejected branches (each costs O(V)).
 */
export function specInferAcceptance(
  p: ArrayLike<number>,
  q: ArrayLike<number>,
  k: number,
  withoutReplacement: boolean,
  maxNodes = 200_000,
): number | undefined {
  const next = (target: Float64Array, draft: Float64Array) => {
    const w = target.map((t, y) => Math.max(0, t - draft[y]));
    return w.some((x) => x > 0) ? normalise(w) : target;
  };
  const acceptHere = (target: Float64Array, draft: Float64Array) => {
    let a = 0;
    for (let x = 0; x < target.length; x++) a += Math.min(draft[x], target[x]);
    return a;
  };
  if (!withoutReplacement) {
    let target = normalise(p);
    const draft = normalise(q);
    let rejectAll = 1;
    for (let i = 0; i < k; i++) {
      rejectAll *= 1 - Math.min(1, acceptHere(target, draft));
      target = next(target, draft);
    }
    return 1 - rejectAll;
  }
  let nodes = 0;
  // Probability of accepting at some step ≥ i, given that steps < i rejected.
  const visit = (target: Float64Array, draft: Float64Array, i: number): number | undefined => {
    if (i === k) return 0;
    let total = acceptHere(target, draft);
    const following = next(target, draft);
    for (let x = 0; x < draft.length; x++) {
      const reject = draft[x] - Math.min(draft[x], target[x]);
      if (!(reject > 0) || i + 1 === k) continue; // nothing left to accept after the last candidate
      if (++nodes > maxNodes) return undefined; // each rejected branch costs O(V)
      const left = draft.slice();
      left[x] = 0;
      const rest = visit(following, normalise(left), i + 1);
      if (rest === undefined) return undefined;
      total += reject * rest;
    }
    return total;
  };
  return visit(normalise(p), normalise(q), 0);
}
