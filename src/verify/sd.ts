/**
 * Speculative sampling (Leviathan et al. 2023; Chen et al. 2023): one candidate X ~ q, accepted
 * with probability min(1, p(X)/q(X)), else a draw from norm(max(p − q, 0)). It is K-SEQ with k = 1
 * (ρ* = 1), and runs through the same kernel path.
 *
 * @module
 */

import type { LevelVerifier } from "./types.ts";
import { levelVerifier } from "./walk.ts";

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
});
