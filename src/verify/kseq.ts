/**
 * SpecTr's K-SEQ verifier (Sun et al., NeurIPS 2023, Algorithm 2): k i.i.d. candidates from q;
 * accept X_i in order with probability min(1, p(X_i)/(ρ* q(X_i))); otherwise draw the residual.
 * ρ* is solved exactly for the k candidates at hand.
 *
 * @module
 */

import type { LevelVerifier } from "./types.ts";
import { levelVerifier } from "./walk.ts";

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
});
