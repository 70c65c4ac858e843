/**
 * SpecTr's K-SEQ verifier (Sun et al., NeurIPS 2023, Algorithm 2): k i.i.d. candidates from q;
 * accept X_i in order with probability min(1, p(X_i)/(ρ* q(X_i))); otherwise draw the residual.
 * ρ* is solved exactly for the k candidates at hand.
 *
 * @module
 */

import type { Kernel } from "../kernel/types.ts";
import type { BlockProposal, BlockScores, LevelVerifier } from "./types.ts";
import { levelVerifier } from "./walk.ts";

/**
 * E[tokens | block] of K-SEQ over the fixed drafts: its rule summed over the tree the drafts form
 * (at each node, candidate i is accepted with probability min(1, p/(ρ* q)) after the ones before it
 * were rejected, and the walk goes on with the drafts sharing that token).
 */
export function kseqExpectedTokens(kernel: Kernel, proposal: BlockProposal, scores: BlockScores): number {
  const { draftLength: L, tokens: drafts, probs: qRows } = proposal;
  // E[accepted below a node | walk at the node] over K-SEQ's choices.
  const walk = (depth: number, survivors: number[]): number => {
    if (depth === L) return 0;
    const first = survivors[0], p = scores.probs(first, depth), q = qRows[first][depth];
    const { rho } = kernel.solveRho(p, q, survivors.length);
    let none = 1, mean = 0;
    for (const r of survivors) {
      const y = drafts[r][depth], a = Math.min(1, p[y] / (rho * q[y]));
      mean += none * a * (1 + walk(depth + 1, survivors.filter((s) => drafts[s][depth] === y)));
      none *= 1 - a;
    }
    return mean;
  };
  return 1 + walk(0, drafts.map((_, r) => r));
}

/**
 * K-SEQ with the exact ρ*.
 *
 * @example
 * ```ts
 * import { kseq } from "./kseq.ts";
 * import { referenceKernel } from "../kernel/reference.ts";
 * const p = new Float64Array([0.5, 0.5]), q = new Float64Array([0.9, 0.1]);
 * const { token } = kseq.select(referenceKernel, p, q, [0, 0], [0.1, 0.2, 0.3]);
 * console.assert(token === 0);
 * ```
 */
export const kseq: LevelVerifier = levelVerifier({
  name: "kseq",
  draftSampling: "iid",
  maxCandidates: 1024,
  select: (kernel, p, q, candidates, uniforms) => kernel.kseqSelect(p, q, candidates, uniforms),
  expectedTokens: kseqExpectedTokens,
});
