/**
 * Deliberately wrong verifiers for power checks: an exactness test that cannot tell these from the
 * real ones proves nothing. Both look plausible and each is a mistake one could make.
 *
 * @module
 */

import { inverseCdf } from "../src/kernel/reference.ts";
import type { Kernel, Probs } from "../src/kernel/types.ts";
import type { Verifier } from "../src/verify/types.ts";

function minSum(p: Probs, q: Probs, rho: number): number {
  let beta = 0;
  for (let i = 0; i < p.length; i++) beta += Math.min(q[i], p[i] / rho);
  return beta;
}

/** K-SEQ with ρ fixed to 1 for every k (exact only for k = 1): accepts too often, residual clamped. */
export const kseqRhoOne: Verifier = {
  name: "kseq",
  draftSampling: "iid",
  maxCandidates: 1024,
  select(kernel: Kernel, p, q, candidates, uniforms) {
    const k = candidates.length;
    const beta = minSum(p, q, 1);
    return kernel.kseqSelect(p, q, candidates, uniforms, { rho: 1, beta, acceptance: 1 - (1 - beta) ** k });
  },
};

/** K-SEQ with the right ρ* but the k = 1 residual norm(max(p − q, 0)) used for every k. */
export const kseqNaiveResidual: Verifier = {
  name: "kseq",
  draftSampling: "iid",
  maxCandidates: 1024,
  select(kernel: Kernel, p, q, candidates, uniforms) {
    const k = candidates.length;
    const { rho } = kernel.solveRho(p, q, k);
    for (let i = 0; i < k; i++) {
      const x = candidates[i];
      if (uniforms[i] * rho * q[x] < p[x]) return { token: x, draftIndex: i };
    }
    const w = new Float64Array(p.length);
    for (let i = 0; i < p.length; i++) w[i] = Math.max(0, p[i] - q[i]);
    const token = w.some((x) => x > 0) ? inverseCdf(w, uniforms[k]) : inverseCdf(p, uniforms[k]);
    return { token, draftIndex: -1 };
  },
};
