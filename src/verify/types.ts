/**
 * The verifier interface: one tree level of speculative decoding. A verifier gets the target row p,
 * the draft row q, the k candidates the proposer drew from q, and k + 1 uniforms, and returns the
 * output token and which candidate (if any) it was. Every verifier here is exact: the output token
 * is distributed as p.
 *
 * @module
 */

import type { Kernel, Probs, Selection } from "../kernel/types.ts";

/** Names of the verifiers shipped with spectr. */
export type VerifierName = "sd" | "kseq" | "specinfer" | "specinfer-wor";

/** How a proposer must draw the candidates at one node for a verifier to stay exact. */
export type DraftSampling = "iid" | "without-replacement";

/** One verification rule (vLLM's "rejection sampler" role). */
export interface Verifier {
  /** Stable name, used in options and stats. */
  readonly name: VerifierName;
  /** How the k candidates at one node must be drawn from q. */
  readonly draftSampling: DraftSampling;
  /** Largest number of candidates per node it accepts (`sd`: 1). */
  readonly maxCandidates: number;
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
