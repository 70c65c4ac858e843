/**
 * The verifier interface: a verifier decides a whole block. It gets the drafts the proposer drew
 * (and the draft rows q they were drawn from), the target rows p at every (draft, depth), and a source
 * of uniforms, and returns the tokens the block outputs. Every shipped verifier is exact: each output
 * token is distributed as p given the tokens before it.
 *
 * Token-level rules (sd, K-SEQ, SpecInfer) are written as one tree level ({@linkcode LevelRule}) and
 * lifted to a block by the shared walk ({@linkcode levelVerifier} in `walk.ts`); block-level rules
 * (block verification) implement {@linkcode Verifier.verifyBlock} directly.
 *
 * @module
 */

import type { Kernel, Probs, Selection } from "../kernel/types.ts";
import type { Random } from "../random.ts";

/** How a proposer must draw the candidates at one node for a verifier to stay exact. */
export type DraftSampling = "iid" | "without-replacement";

/** The drafts of one block, as a verifier reads them. */
export interface BlockProposal {
  /** Drafts proposed. */
  readonly k: number;
  /** Tokens per draft, L ≥ 0 (0: nothing proposed, the block is one target-only token). */
  readonly draftLength: number;
  /** Draft tokens `[k][L]`. */
  readonly tokens: readonly Int32Array[];
  /**
   * Warped draft probs `[k][L][vocab]`: `probs[r][t]` is the q that drew `tokens[r][t]`, after the
   * accepted prefix and draft r's tokens 0..t−1 (depth 0 is one shared row).
   */
  readonly probs: readonly (readonly Probs[])[];
}

/** The target rows of one block, as a verifier reads them. */
export interface BlockScores {
  /** Warped target probs `[vocab]` of draft `row` at `depth` (after its tokens 0..depth−1), 0..L. */
  probs(row: number, depth: number): Probs;
}

/** The outcome of one block. */
export interface BlockResult {
  /** Output tokens: the accepted draft tokens, then the recovered (residual) or bonus token. */
  tokens: number[];
  /** Draft tokens accepted (0..L); `tokens.length === accepted + 1`. */
  accepted: number;
  /** Depths verified (1..L; 0 when L = 0). */
  reached: number;
  /** A draft whose first `accepted` tokens are the accepted ones (the row to keep on rollback). */
  row: number;
}

/** One verification rule (vLLM's "rejection sampler" role), deciding a whole block. */
export interface Verifier {
  /** Stable name, used in options and stats (its key in the registry). */
  readonly name: string;
  /** How the k candidates at one node must be drawn from q. */
  readonly draftSampling: DraftSampling;
  /** Largest number of drafts per block it takes (`sd`, `block`: 1). */
  readonly maxCandidates: number;
  /**
   * Decides one block.
   *
   * @param kernel The WASM kernel or the reference (warped rows, residuals, sampling).
   * @param proposal The drafts and their q rows.
   * @param scores The target rows at depths 0..L of every draft.
   * @param random Source of the uniforms, drawn in an order the verifier documents.
   */
  verifyBlock(kernel: Kernel, proposal: BlockProposal, scores: BlockScores, random: Random): BlockResult;
  /**
   * E[tokens the block yields | its drafts and target rows] over this verifier's own uniforms
   * (accepted + 1), where it has a closed form; `bench:efficiency` scores with it and `auto`-style
   * planners may. Absent: estimate it by repeating `verifyBlock`.
   */
  expectedTokens?(kernel: Kernel, proposal: BlockProposal, scores: BlockScores): number;
}

/** One tree level of a token-level rule: k candidates at one node, k + 1 uniforms, one token out. */
export interface LevelRule {
  /**
   * Decides one tree level.
   *
   * @param kernel The WASM kernel or the reference.
   * @param p Target probs `[vocab]` at this node (already warped).
   * @param q Draft probs `[vocab]` at this node (the same warp).
   * @param candidates k token ids drawn from q as `draftSampling` says.
   * @param uniforms k + 1 uniforms in [0, 1).
   */
  select(
    kernel: Kernel,
    p: Probs,
    q: Probs,
    candidates: ArrayLike<number>,
    uniforms: ArrayLike<number>,
  ): Selection;
}

/** A token-level verifier: a level rule lifted to blocks by the shared walk. */
export interface LevelVerifier extends Verifier, LevelRule {}
