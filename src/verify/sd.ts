/**
 * Speculative sampling (Leviathan et al. 2023; Chen et al. 2023): one candidate X ~ q, accepted
 * with probability min(1, p(X)/q(X)), else a draw from norm(max(p − q, 0)). It is K-SEQ with k = 1
 * (ρ* = 1), and runs through the same kernel path.
 *
 * @module
 */

import type { Kernel } from "../kernel/types.ts";
import type { BlockProposal, BlockScores, LevelVerifier } from "./types.ts";
import { levelVerifier } from "./walk.ts";

/**
 * E[tokens | block] of speculative sampling on the first draft x: 1 + Σ_i Π_{j≤i} min(1, p(x_j)/q(x_j)).
 *
 * @example One draft token with p/q = 1/2: kept half the time
 * ```ts
 * import { sdExpectedTokens } from "./sd.ts";
 * import { referenceKernel } from "../kernel/reference.ts";
 * const p = Float64Array.of(0.25, 0.75), q = Float64Array.of(0.5, 0.5);
 * const proposal = { k: 1, draftLength: 1, tokens: [Int32Array.of(0)], probs: [[q]] };
 * console.assert(sdExpectedTokens(referenceKernel, proposal, { probs: () => p }) === 1.5);
 * ```
 */
export function sdExpectedTokens(_kernel: Kernel, proposal: BlockProposal, scores: BlockScores): number {
  const x = proposal.tokens[0];
  let mean = 1, kept = 1;
  for (let i = 0; i < proposal.draftLength; i++) {
    mean += kept *= Math.min(1, scores.probs(0, i)[x[i]] / proposal.probs[0][i][x[i]]);
  }
  return mean;
}

/**
 * Speculative sampling with a single candidate per node.
 *
 * @throws {RangeError} from `select` when given more than one candidate.
 * @example
 * ```ts
 * import { sd } from "./sd.ts";
 * import { referenceKernel } from "../kernel/reference.ts";
 * const p = new Float64Array([1, 0]), q = new Float64Array([0.5, 0.5]);
 * console.assert(sd.select(referenceKernel, p, q, [1], [0.4, 0.7]).token === 0);
 * ```
 */
export const sd: LevelVerifier = levelVerifier({
  name: "sd",
  draftSampling: "iid",
  maxCandidates: 1,
  select(kernel, p, q, candidates, uniforms) {
    if (candidates.length !== 1) {
      throw new RangeError(
        `Cannot verify with sd: it takes exactly 1 candidate per node, got ${candidates.length}`,
      );
    }
    return kernel.kseqSelect(p, q, candidates, uniforms);
  },
  expectedTokens: sdExpectedTokens,
});
