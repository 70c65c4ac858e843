/**
 * The verifier walk of one block: depth by depth, the verifier picks the next token among the
 * drafts that still agree with the accepted prefix, until a residual draw or the bonus token.
 *
 * @module
 */

import type { Kernel } from "../kernel/types.ts";
import type { Random } from "../random.ts";
import type { Verifier } from "../verify/types.ts";
import type { DraftProposal } from "./proposer.ts";
import type { TargetScores } from "./scorer.ts";

/** The outcome of one block. */
export interface BlockResult {
  /** Output tokens: the accepted draft tokens, then the recovered (residual) or bonus token. */
  tokens: number[];
  /** Draft tokens accepted (0..L); `tokens.length === accepted + 1`. */
  accepted: number;
  /** Depths verified (1..L). */
  reached: number;
  /** A draft whose first `accepted` tokens are the accepted ones (the row to keep on rollback). */
  row: number;
}

/**
 * Walks one block. At depth t = 0..L−1 with survivors S (initially every draft, in index order),
 * the candidates are the depth-t tokens of S, p is the target row of the first survivor at depth t
 * and q its draft row; the verifier gets k' = |S| candidates and k' + 1 uniforms. An accepted token
 * keeps the survivors whose depth-t token equals it; a residual draw (draftIndex −1) ends the
 * block. When all L depths are accepted, a bonus token is drawn from p at depth L with one uniform.
 *
 * Every survivor's depth-t token is, given the accepted prefix, an independent draw from the same
 * q (as the verifier's `draftSampling` demands at depth 0; deeper, without-replacement drafts have a
 * single survivor), so each output token is an exact sample of p given the prefix.
 *
 * @param kernel Kernel for the verifier and the bonus draw.
 * @param verifier The verification rule.
 * @param proposal Drafts `[k][L]` and their q rows.
 * @param scores Target rows at depths 0..L per draft.
 * @param random Source of the uniforms.
 * @returns The tokens of the block and where to roll back to.
 * @example Identical target and draft accept everything
 * ```ts
 * import { walkBlock } from "./walk.ts";
 * import { TargetScores } from "./scorer.ts";
 * import { referenceKernel } from "../kernel/reference.ts";
 * import { kseq } from "../verify/kseq.ts";
 * import { Random } from "../random.ts";
 * import assert from "node:assert/strict";
 * const q = new Float64Array([0.5, 0.5]);
 * const proposal = { k: 1, draftLength: 1, tokens: [Int32Array.of(1)], probs: [[q]], calls: 1 };
 * const scores = new TargetScores(referenceKernel, {}, new Float32Array([0, 0, 0, 0]), 1, 2, 2);
 * const block = walkBlock(referenceKernel, kseq, proposal, scores, new Random(1));
 * assert.equal(block.accepted, 1);
 * assert.equal(block.tokens[0], 1);
 * ```
 */
export function walkBlock(
  kernel: Kernel,
  verifier: Verifier,
  proposal: DraftProposal,
  scores: TargetScores,
  random: Random,
): BlockResult {
  const { tokens: drafts, probs: draftProbs, draftLength } = proposal;
  let survivors: number[] = [];
  for (let r = 0; r < proposal.k; r++) survivors.push(r);
  const out: number[] = [];
  for (let t = 0; t < draftLength; t++) {
    const first = survivors[0];
    const candidates = survivors.map((r) => drafts[r][t]);
    const p = scores.probs(first, t);
    const q = draftProbs[first][t];
    const selection = verifier.select(
      kernel,
      p,
      q,
      candidates,
      random.fill(new Float64Array(candidates.length + 1)),
    );
    out.push(selection.token);
    if (selection.draftIndex < 0) return { tokens: out, accepted: t, reached: t + 1, row: first };
    survivors = survivors.filter((r) => drafts[r][t] === selection.token);
    if (survivors.length === 0) {
      throw new RangeError(
        `Cannot verify drafts: ${verifier.name} accepted candidate ${selection.draftIndex} but returned token ` +
          `${selection.token}, which no candidate holds`,
      );
    }
  }
  const row = survivors[0];
  const bonus = kernel.sample(scores.probs(row, draftLength), [random.next()])[0];
  out.push(bonus);
  return { tokens: out, accepted: draftLength, reached: draftLength, row };
}
