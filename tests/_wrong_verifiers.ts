/**
 * Deliberately wrong verifiers for power checks: an exactness test that cannot tell these from the
 * real ones proves nothing. Both look plausible and each is a mistake one could make.
 *
 * @module
 */

import { inverseCdf } from "../src/kernel/reference.ts";
import type { Kernel, Probs } from "../src/kernel/types.ts";
import type { Random } from "../src/random.ts";
import { blockWeights, residualMass, residualRow } from "../src/verify/block.ts";
import { sd } from "../src/verify/sd.ts";
import type {
  BlockProposal,
  BlockResult,
  BlockScores,
  LevelVerifier,
  Verifier,
} from "../src/verify/types.ts";
import { levelVerifier } from "../src/verify/walk.ts";

function minSum(p: Probs, q: Probs, rho: number): number {
  let beta = 0;
  for (let i = 0; i < p.length; i++) beta += Math.min(q[i], p[i] / rho);
  return beta;
}

/** K-SEQ with ρ fixed to 1 for every k (exact only for k = 1): accepts too often, residual clamped. */
export const kseqRhoOne: LevelVerifier = levelVerifier({
  name: "kseq",
  draftSampling: "iid",
  maxCandidates: 1024,
  select(kernel: Kernel, p: Probs, q: Probs, candidates: ArrayLike<number>, uniforms: ArrayLike<number>) {
    const k = candidates.length;
    const beta = minSum(p, q, 1);
    return kernel.kseqSelect(p, q, candidates, uniforms, { rho: 1, beta, acceptance: 1 - (1 - beta) ** k });
  },
});

/** K-SEQ with the right ρ* but the k = 1 residual norm(max(p − q, 0)) used for every k. */
export const kseqNaiveResidual: LevelVerifier = levelVerifier({
  name: "kseq",
  draftSampling: "iid",
  maxCandidates: 1024,
  select(kernel: Kernel, p: Probs, q: Probs, candidates: ArrayLike<number>, uniforms: ArrayLike<number>) {
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
});

/** Block verification's τ: every one of u₁…u_L, or stop at the first failure (token-level style). */
function blockWith(options: { firstStop: boolean; plainResidual: boolean }): Verifier {
  return Object.freeze({
    name: "block",
    draftSampling: "iid",
    maxCandidates: 1,
    verifyBlock(kernel: Kernel, proposal: BlockProposal, scores: BlockScores, random: Random): BlockResult {
      const L = proposal.draftLength, draft = proposal.tokens[0], qRows = proposal.probs[0];
      const pOf = new Float64Array(L), qOf = new Float64Array(L);
      for (let i = 0; i < L; i++) {
        pOf[i] = scores.probs(0, i)[draft[i]];
        qOf[i] = qRows[i][draft[i]];
      }
      const { w, h } = blockWeights(pOf, qOf, (i, wi) => residualMass(scores.probs(0, i), qRows[i], wi));
      let tau = 0, stopped = false;
      for (let i = 1; i <= L; i++) {
        const pass = random.next() < h[i];
        if (options.firstStop) {
          if (!pass) stopped = true;
          else if (!stopped) tau = i;
        } else if (pass) tau = i;
      }
      const tokens = Array.from(draft.subarray(0, tau));
      const u = [random.next()];
      if (tau === L) tokens.push(kernel.sample(scores.probs(0, L), u)[0]);
      else {
        const p = scores.probs(0, tau), row = residualRow(p, qRows[tau], options.plainResidual ? 1 : w[tau]);
        tokens.push(kernel.sample(row.some((x) => x > 0) ? row : p, u)[0]);
      }
      return { tokens, accepted: tau, reached: tau === L ? L : tau + 1, row: 0 };
    },
  });
}

/**
 * Block verification with the token-level residual norm(max(p − q, 0)) instead of
 * norm(max(w_τ·p − q, 0)) after a partial block: the weights and τ are right, the recovery draw is not.
 */
export const blockPlainResidual: Verifier = blockWith({ firstStop: false, plainResidual: true });

/**
 * Block verification whose τ stops at the first failed uᵢ ≥ hᵢ (as token-level verification stops),
 * instead of taking the last i with uᵢ < hᵢ.
 */
export const blockFirstStop: Verifier = blockWith({ firstStop: true, plainResidual: false });

/**
 * A chooser that peeks at the current block's outcome: it verifies with sd, and when sd rejects the
 * first draft token it switches this very block to autoregressive (a fresh draw from p). Choosing
 * the method after seeing the verification biases the output: `auto` must never do this.
 */
export const peekingChooser: Verifier = Object.freeze({
  name: "sd",
  draftSampling: "iid",
  maxCandidates: 1,
  verifyBlock(kernel: Kernel, proposal: BlockProposal, scores: BlockScores, random: Random): BlockResult {
    const block = sd.verifyBlock(kernel, proposal, scores, random);
    if (block.accepted > 0 || proposal.draftLength === 0) return block;
    return {
      tokens: [kernel.sample(scores.probs(0, 0), [random.next()])[0]],
      accepted: 0,
      reached: 1,
      row: 0,
    };
  },
});
