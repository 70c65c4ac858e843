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
import { solveWeightedRho } from "../src/verify/kseq_block.ts";
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

/** Where a K-SEQ block verifier variant goes wrong (each flag one plausible mistake). */
interface KseqBlockMistakes {
  /** Solve ρ for the normalised p (the kernels' `solveRho`) at every node instead of for w·p. */
  unitRho?: boolean;
  /** Keep child y with 1 − (1 − a(y))^m (m copies, independent of the candidates before it). */
  independentChildren?: boolean;
}

/**
 * K-SEQ block verification (src/verify/kseq_block.ts), written again here with one mistake
 * switched on. Without any it makes the same decisions as the shipped verifier.
 */
function kseqBlockWith(mistakes: KseqBlockMistakes): Verifier {
  return Object.freeze({
    name: "kseq-block",
    draftSampling: "iid",
    maxCandidates: 1024,
    verifyBlock(kernel: Kernel, proposal: BlockProposal, scores: BlockScores, random: Random): BlockResult {
      const { draftLength: L, tokens: drafts, probs: qRows } = proposal;
      type Kept = { depth: number; row: number; w?: number; rho?: number; scale?: number };
      const visit = (depth: number, survivors: number[], w: number): Kept | undefined => {
        if (!(w > 0)) return undefined;
        const first = survivors[0];
        if (depth === L) return random.next() < w ? { depth, row: first } : undefined;
        const p = scores.probs(first, depth), q = qRows[first][depth];
        const { rho, beta, acceptance } = mistakes.unitRho
          ? (() => {
            const { rho } = kernel.solveRho(p, q, survivors.length);
            const beta = minSum(p.map((x) => w * x), q, rho);
            return { rho, beta, acceptance: 1 - (1 - beta) ** survivors.length };
          })()
          : solveWeightedRho(p, q, w, survivors.length);
        const accept = (y: number) => Math.min(1, (w * p[y]) / (rho * q[y]));
        const groups: number[] = [], mass = new Map<number, number>();
        let none = 1;
        for (const r of survivors) {
          const y = drafts[r][depth];
          if (!mass.has(y)) groups.push(y);
          mass.set(y, (mass.get(y) ?? 0) + none * accept(y));
          none *= 1 - accept(y);
        }
        let used = 0;
        for (const y of groups) {
          const copies = survivors.filter((r) => drafts[r][depth] === y);
          const weight = mistakes.independentChildren
            ? 1 - (1 - accept(y)) ** copies.length
            : Math.min(1, mass.get(y)! / (1 - used));
          used += mass.get(y)!;
          const kept = visit(depth + 1, copies, weight);
          if (kept) return kept;
        }
        const stop = depth === 0 || w >= 1 || acceptance >= 1 ||
          random.next() < (w - acceptance) / (1 - acceptance);
        return stop ? { depth, row: first, w, rho, scale: beta > 0 ? acceptance / beta : 0 } : undefined;
      };
      const kept = visit(0, drafts.map((_, r) => r), 1)!;
      const tokens = Array.from(drafts[kept.row].subarray(0, kept.depth));
      const p = scores.probs(kept.row, kept.depth), u = [random.next()];
      if (kept.w === undefined) tokens.push(kernel.sample(p, u)[0]);
      else {
        const q = qRows[kept.row][kept.depth], row = new Float64Array(p.length);
        for (let x = 0; x < p.length; x++) {
          const wp = kept.w * p[x];
          row[x] = Math.max(0, wp - kept.scale! * Math.min(q[x], wp / kept.rho!));
        }
        tokens.push(kernel.sample(row.some((x) => x > 0) ? row : p, u)[0]);
      }
      const L2 = proposal.draftLength;
      return {
        tokens,
        accepted: kept.depth,
        reached: kept.depth === L2 ? L2 : kept.depth + 1,
        row: kept.row,
      };
    },
  });
}

/**
 * K-SEQ block verification that reuses the normalised ρ*(p, q, k') at every node: for a node kept
 * with weight w < 1 the target is w·p, whose ρ* is larger, so children are kept too often and the
 * residual (clamped at 0) cannot make up for it.
 */
export const kseqBlockUnitRho: Verifier = kseqBlockWith({ unitRho: true });

/**
 * K-SEQ block verification that keeps child y with probability 1 − (1 − a(y))^m for its m copies,
 * as if the groups were independent, instead of K-SEQ's P(the first accepted candidate is a y)
 * given the candidates before it: for k ≥ 3 the children's marginals no longer match the residual.
 */
export const kseqBlockIndependentChildren: Verifier = kseqBlockWith({ independentChildren: true });

/** The same re-implementation without a mistake (a check that the variants differ only there). */
export const kseqBlockRewritten: Verifier = kseqBlockWith({});
