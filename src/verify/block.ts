/**
 * Block verification (Sun, Mendlovic, Leviathan, Aharoni, Ro, Beirami, Suresh, ICLR 2025, "Block
 * Verification Accelerates Speculative Decoding", Algorithm 2), in this project's notation (p target,
 * q draft; one draft x₁…x_L). Instead of deciding token by token, it weighs the whole block:
 *
 * - w₀ = 1, wᵢ = min(1, wᵢ₋₁·p(xᵢ)/q(xᵢ)) (p, q after x₁…xᵢ₋₁);
 * - Zᵢ₊₁ = Σₓ max(0, wᵢ·p(x) − q(x)) over the next position (after x₁…xᵢ);
 * - hᵢ = Zᵢ₊₁ / (Zᵢ₊₁ + 1 − wᵢ) for i < L (1 when that is 0/0), h_L = w_L;
 * - with independent uniforms u₁…u_L, τ = the last i with uᵢ < hᵢ (0 when none);
 * - output x₁…x_τ, then a draw from max(0, w_τ·p − q)/Z_τ₊₁ at position τ + 1 (τ < L), or from p
 *   after the whole draft (τ = L).
 *
 * It is exact (each output token is distributed as p given the ones before), never accepts fewer
 * tokens in expectation than token-level speculative sampling, and costs one extra pass over the
 * vocabulary per position (Zᵢ₊₁). With τ = 0 the draw is from max(0, p − q), sd's residual.
 *
 * Uniforms, in order: u₁…u_L, then one for the final draw.
 *
 * @module
 */

import type { Kernel, Probs } from "../kernel/types.ts";
import type { Random } from "../random.ts";
import type { BlockProposal, BlockResult, BlockScores, Verifier } from "./types.ts";

/** Σₓ max(0, w·p(x) − q(x)): the residual mass of the weighted target over the draft. */
export function residualMass(p: Probs, q: Probs, w: number): number {
  let z = 0;
  for (let x = 0; x < p.length; x++) {
    const d = w * p[x] - q[x];
    if (d > 0) z += d;
  }
  return z;
}

/** The residual row max(0, w·p − q) (unnormalised; the kernel's sampler normalises). */
export function residualRow(p: Probs, q: Probs, w: number): Float64Array {
  const out = new Float64Array(p.length);
  for (let x = 0; x < p.length; x++) {
    const d = w * p[x] - q[x];
    out[x] = d > 0 ? d : 0;
  }
  return out;
}

/**
 * The block-verification weights of one draft: `w[i]` (i = 0..L) and the stopping probabilities
 * `h[i]` (i = 1..L; `h[0]` unused), from the drafted tokens' probabilities and the residual masses.
 *
 * @param pOfDraft p(xᵢ) for i = 1..L (index i − 1).
 * @param qOfDraft q(xᵢ) for i = 1..L (index i − 1).
 * @param residualMasses Zᵢ₊₁ for i = 1..L − 1 (index i − 1): Σ max(0, wᵢ·p − q) after x₁…xᵢ, which
 *   depends on wᵢ — pass a function of (i, wᵢ).
 * @returns `{ w, h }`, both of length L + 1.
 * @example The paper's two-token example: p = (1/3, 2/3), q = (2/3, 1/3), draft "a a"
 * ```ts
 * import { blockWeights, residualMass } from "./block.ts";
 * const p = Float64Array.of(1 / 3, 2 / 3), q = Float64Array.of(2 / 3, 1 / 3);
 * const { w, h } = blockWeights([p[0], p[0]], [q[0], q[0]], (_i, wi) => residualMass(p, q, wi));
 * console.assert(Math.abs(w[1] - 0.5) < 1e-12 && Math.abs(h[2] - 0.25) < 1e-12);
 * ```
 */
export function blockWeights(
  pOfDraft: ArrayLike<number>,
  qOfDraft: ArrayLike<number>,
  residualMasses: (i: number, wi: number) => number,
): { w: Float64Array; h: Float64Array } {
  const L = pOfDraft.length;
  const w = new Float64Array(L + 1);
  const h = new Float64Array(L + 1);
  w[0] = 1;
  for (let i = 1; i <= L; i++) {
    w[i] = Math.min(1, (w[i - 1] * pOfDraft[i - 1]) / qOfDraft[i - 1]);
    if (i < L) {
      const z = residualMasses(i, w[i]);
      const denominator = z + 1 - w[i];
      h[i] = denominator > 0 ? Math.min(1, z / denominator) : 1;
    } else {
      h[i] = w[i];
    }
  }
  return { w, h };
}

/**
 * E[tokens | block] of block verification on the first draft x: 1 + Σ_{i=1..L} (1 − Π_{j≥i} (1 − h_j)),
 * with h the stopping weights of {@linkcode blockWeights} (token i is kept when some stop at depth
 * ≥ i succeeds).
 */
export function blockExpectedTokens(_kernel: Kernel, proposal: BlockProposal, scores: BlockScores): number {
  const L = proposal.draftLength, x = proposal.tokens[0], q = proposal.probs[0];
  const pOf: number[] = [], qOf: number[] = [];
  for (let i = 0; i < L; i++) {
    pOf.push(scores.probs(0, i)[x[i]]);
    qOf.push(q[i][x[i]]);
  }
  const { h } = blockWeights(pOf, qOf, (i, wi) => residualMass(scores.probs(0, i), q[i], wi));
  let mean = 1, allFail = 1;
  for (let i = L; i >= 1; i--) mean += 1 - (allFail *= 1 - h[i]);
  return mean;
}

/**
 * Block verification for one draft per block (`maxCandidates` 1).
 *
 * @example Identical target and draft keep the whole block
 * ```ts
 * import { blockVerifier } from "./block.ts";
 * import { TargetScores } from "../decode/scorer.ts";
 * import { referenceKernel } from "../kernel/reference.ts";
 * import { Random } from "../random.ts";
 * const q = new Float64Array([0.5, 0.5]);
 * const proposal = { k: 1, draftLength: 2, tokens: [Int32Array.of(1, 0)], probs: [[q, q]] };
 * const scores = new TargetScores(referenceKernel, {}, new Float32Array(6), 1, 3, 2);
 * const block = blockVerifier.verifyBlock(referenceKernel, proposal, scores, new Random(3));
 * console.assert(block.accepted === 2 && block.tokens.length === 3);
 * ```
 */
export const blockVerifier: Verifier = Object.freeze({
  name: "block",
  draftSampling: "iid",
  maxCandidates: 1,
  expectedTokens: blockExpectedTokens,
  verifyBlock(kernel: Kernel, proposal: BlockProposal, scores: BlockScores, random: Random): BlockResult {
    if (proposal.k !== 1) {
      throw new RangeError(`Cannot verify with block: it takes exactly 1 draft per block, got ${proposal.k}`);
    }
    const L = proposal.draftLength;
    const draft = proposal.tokens[0];
    const qRows = proposal.probs[0];
    const pOf = new Float64Array(L), qOf = new Float64Array(L);
    for (let i = 0; i < L; i++) {
      pOf[i] = scores.probs(0, i)[draft[i]];
      qOf[i] = qRows[i][draft[i]];
    }
    const masses = new Float64Array(L + 1);
    const { w, h } = blockWeights(pOf, qOf, (i, wi) => {
      masses[i] = residualMass(scores.probs(0, i), qRows[i], wi);
      return masses[i];
    });
    let tau = 0;
    for (let i = 1; i <= L; i++) if (random.next() < h[i]) tau = i;
    const tokens = Array.from(draft.subarray(0, tau));
    const u = [random.next()];
    if (tau === L) {
      tokens.push(kernel.sample(scores.probs(0, L), u)[0]);
    } else {
      // τ < L: the draw from max(0, w_τ·p − q) at position τ + 1 (depth τ). For τ = 0 this is sd's
      // residual; its mass Z₁ = Σ max(0, p − q) is > 0 unless p = q, where h₁ = 1 makes τ ≥ 1 certain.
      const p = scores.probs(0, tau), q = qRows[tau];
      const row = residualRow(p, q, w[tau]);
      const mass = tau > 0 ? masses[tau] : residualMass(p, q, 1);
      tokens.push(kernel.sample(mass > 0 ? row : p, u)[0]);
    }
    return { tokens, accepted: tau, reached: tau === L ? L : tau + 1, row: 0 };
  },
});
