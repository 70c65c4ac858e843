/**
 * The level-by-level walk of one block, shared by the token-level verifiers (sd, K-SEQ, SpecInfer):
 * depth by depth, a {@linkcode LevelRule} picks the next token among the drafts that still agree with
 * the accepted prefix, until a residual draw or the bonus token.
 *
 * @module
 */

import type { Kernel } from "../kernel/types.ts";
import type { Random } from "../random.ts";
import type {
  BlockProposal,
  BlockResult,
  BlockScores,
  DraftSampling,
  LevelRule,
  LevelVerifier,
  Verifier,
} from "./types.ts";

/**
 * Walks one block. At depth t = 0..L−1 with survivors S (initially every draft, in index order),
 * the candidates are the depth-t tokens of S, p is the target row of the first survivor at depth t
 * and q its draft row; the rule gets k' = |S| candidates and k' + 1 uniforms. An accepted token
 * keeps the survivors whose depth-t token equals it; a residual draw (draftIndex −1) ends the
 * block. When all L depths are accepted (or L = 0), a bonus token is drawn from p at depth L with
 * one uniform.
 *
 * Every survivor's depth-t token is, given the accepted prefix, an independent draw from the same
 * q (as the rule's `draftSampling` demands at depth 0; deeper, without-replacement drafts have a
 * single survivor), so each output token is an exact sample of p given the prefix.
 *
 * @param kernel Kernel for the rule and the bonus draw.
 * @param rule The level rule and its name (for errors).
 * @param proposal Drafts `[k][L]` and their q rows.
 * @param scores Target rows at depths 0..L per draft.
 * @param random Source of the uniforms.
 * @returns The tokens of the block and where to roll back to.
 * @example Identical target and draft accept everything
 * ```ts
 * import { walkBlock } from "./walk.ts";
 * import { TargetScores } from "../decode/scorer.ts";
 * import { referenceKernel } from "../kernel/reference.ts";
 * import { kseq } from "./kseq.ts";
 * import { Random } from "../random.ts";
 * import assert from "node:assert/strict";
 * const q = new Float64Array([0.5, 0.5]);
 * const proposal = { k: 1, draftLength: 1, tokens: [Int32Array.of(1)], probs: [[q]] };
 * const scores = new TargetScores(referenceKernel, {}, new Float32Array([0, 0, 0, 0]), 1, 2, 2);
 * const block = walkBlock(referenceKernel, kseq, proposal, scores, new Random(1));
 * assert.equal(block.accepted, 1);
 * assert.equal(block.tokens[0], 1);
 * ```
 */
export function walkBlock(
  kernel: Kernel,
  rule: LevelRule & { readonly name: string },
  proposal: BlockProposal,
  scores: BlockScores,
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
    const selection = rule.select(
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
        `Cannot verify drafts: ${rule.name} accepted candidate ${selection.draftIndex} but returned token ` +
          `${selection.token}, which no candidate holds`,
      );
    }
  }
  const row = survivors[0] ?? 0;
  out.push(kernel.sample(scores.probs(row, draftLength), [random.next()])[0]);
  return { tokens: out, accepted: draftLength, reached: draftLength, row };
}

/** What {@linkcode levelVerifier} needs: a name, the sampling it demands, its k cap and the rule. */
export interface LevelVerifierDefinition extends LevelRule {
  /** Stable name (its registry key). */
  readonly name: string;
  /** How the candidates at one node must be drawn. */
  readonly draftSampling: DraftSampling;
  /** Largest k it takes. */
  readonly maxCandidates: number;
  /** See {@linkcode Verifier.expectedTokens}. */
  readonly expectedTokens?: Verifier["expectedTokens"];
}

/**
 * Lifts a level rule to a block verifier: `verifyBlock` is {@linkcode walkBlock} over the rule.
 *
 * @example A verifier that accepts the first candidate whenever p gives it mass
 * ```ts
 * import { levelVerifier } from "./walk.ts";
 * const greedyish = levelVerifier({
 *   name: "demo",
 *   draftSampling: "iid",
 *   maxCandidates: 1,
 *   select: (kernel, p, q, candidates, uniforms) => kernel.kseqSelect(p, q, candidates, uniforms),
 * });
 * console.assert(typeof greedyish.verifyBlock === "function");
 * ```
 */
export function levelVerifier(definition: LevelVerifierDefinition): LevelVerifier {
  const { name, draftSampling, maxCandidates, select, expectedTokens } = definition;
  const verifier: LevelVerifier = {
    name,
    draftSampling,
    maxCandidates,
    select,
    ...(expectedTokens ? { expectedTokens } : {}),
    verifyBlock: (kernel, proposal, scores, random) => walkBlock(kernel, verifier, proposal, scores, random),
  };
  return Object.freeze(verifier);
}
