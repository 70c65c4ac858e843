/**
 * The proposer: runs the draft model to propose k sequences of L tokens, keeping the draft
 * distributions q at every (draft, depth) for the verifier.
 *
 * @module
 */

import type { Kernel, Probs, WarpOptions } from "../kernel/types.ts";
import type { Random } from "../random.ts";
import type { DraftSampling } from "../verify/types.ts";
import type { CausalModel } from "./model.ts";

/** k draft sequences of L tokens and the draft probabilities they were drawn from. */
export interface DraftProposal {
  /** Drafts actually proposed: k, or fewer when drawing without replacement from a small support. */
  k: number;
  /** Draft length L of this block. */
  draftLength: number;
  /** Draft tokens `[k][L]`. */
  tokens: Int32Array[];
  /**
   * Warped draft probs `[k][L][vocab]`: `probs[r][t]` is q after the accepted prefix and draft r's
   * tokens 0..t−1 (depth 0 is one shared row).
   */
  probs: Probs[][];
  /** Draft forwards made (L). */
  calls: number;
}

/** Options of {@linkcode DraftProposer}. */
export interface DraftProposerOptions {
  /** The draft model; it must hold one row when `propose` is called. */
  model: CausalModel;
  /** Kernel used to warp and sample. */
  kernel: Kernel;
  /** Drafts per block (k ≥ 1). */
  k: number;
  /**
   * How the k depth-0 tokens are drawn from q₀ (the verifier's `draftSampling`).
   * @default {"iid"}
   */
  sampling?: DraftSampling;
  /**
   * Warp applied to the draft logits (the same as the target's).
   * @default {{}}
   */
  warp?: WarpOptions;
}

/**
 * Proposes k drafts of L tokens per block: one draft call for the pending tokens, k depth-0 tokens
 * drawn from q₀ (i.i.d., or without replacement with k capped at the tokens q₀ gives mass to), a
 * fork to k rows, then one draft call per depth 1..L−1 drawing one token per row from that row's q.
 * With without-replacement sampling only the depth-0 tokens are distinct; deeper tokens are drawn
 * independently per row.
 *
 * Uniforms, in order: k for depth 0, then for each depth 1..L−1 one per row in row order.
 *
 * @example Two drafts of three tokens
 * ```ts
 * import { DraftProposer } from "./proposer.ts";
 * import { MarkovModel, randomMarkovTable } from "./markov.ts";
 * import { referenceKernel } from "../kernel/reference.ts";
 * import { Random } from "../random.ts";
 * import assert from "node:assert/strict";
 * const model = new MarkovModel({ table: randomMarkovTable(4, 1, 1), vocabSize: 4 });
 * const proposer = new DraftProposer({ model, kernel: referenceKernel, k: 2 });
 * const proposal = await proposer.propose([0, 1], 3, new Random(5));
 * assert.equal(proposal.tokens.length, 2);
 * assert.equal(proposal.tokens[0].length, 3);
 * assert.equal(model.calls, 3);
 * ```
 */
export class DraftProposer {
  /** The draft model. */
  readonly model: CausalModel;
  readonly #kernel: Kernel;
  readonly #k: number;
  readonly #withoutReplacement: boolean;
  readonly #warp: WarpOptions;
  #base = 0;
  #last: DraftProposal | undefined;

  /**
   * Builds a proposer over the draft model.
   *
   * @throws {RangeError} k not an integer ≥ 1.
   */
  constructor(options: DraftProposerOptions) {
    const { model, kernel, k, sampling = "iid", warp = {} } = options;
    if (!Number.isInteger(k) || k < 1) {
      throw new RangeError(`Cannot build a draft proposer: k must be an integer >= 1, got ${k}`);
    }
    this.model = model;
    this.#kernel = kernel;
    this.#k = k;
    this.#withoutReplacement = sampling === "without-replacement";
    this.#warp = warp;
  }

  /**
   * Feeds the pending tokens and proposes the drafts of one block.
   *
   * @param pending Tokens the draft has not been fed yet (≥ 1).
   * @param draftLength L ≥ 1.
   * @param random Source of the uniforms.
   * @returns The drafts and their q rows.
   * @throws {RangeError} from the model (context limit, bad ids).
   */
  async propose(pending: ArrayLike<number>, draftLength: number, random: Random): Promise<DraftProposal> {
    const model = this.model;
    const kernel = this.#kernel;
    const vocab = model.vocabSize;
    const logits = await model.append([pending], 1);
    this.#base = model.length;
    const q0 = kernel.warp(logits, this.#warp);
    let k = this.#k;
    if (this.#withoutReplacement) {
      let support = 0;
      for (let i = 0; i < q0.length; i++) if (q0[i] > 0) support++;
      k = Math.min(k, support);
    }
    const first = kernel.sample(q0, random.fill(new Float64Array(k)), this.#withoutReplacement);
    const tokens: Int32Array[] = [];
    const probs: Probs[][] = [];
    for (let r = 0; r < k; r++) {
      tokens.push(new Int32Array(draftLength));
      tokens[r][0] = first[r];
      probs.push([q0]);
    }
    if (draftLength > 1) model.fork(k);
    const u = [0];
    for (let t = 1; t < draftLength; t++) {
      const step = await model.append(tokens.map((row) => [row[t - 1]]), 1);
      for (let r = 0; r < k; r++) {
        const q = kernel.warp(step.subarray(r * vocab, (r + 1) * vocab), this.#warp);
        probs[r].push(q);
        u[0] = random.next();
        tokens[r][t] = kernel.sample(q, u)[0];
      }
    }
    this.#last = { k, draftLength, tokens, probs, calls: draftLength };
    return this.#last;
  }

  /**
   * Rolls the draft back to the accepted prefix of the last proposal: keeps `row`, cut to the
   * tokens fed before the block plus the accepted draft tokens it was fed (the draft is fed tokens
   * up to depth L − 2 only).
   *
   * @param row A draft whose first `accepted` tokens are the accepted ones.
   * @param accepted Draft tokens accepted (0..L).
   * @returns Accepted tokens the draft has not been fed: the last draft token when all L were
   *   accepted, else none.
   * @throws {RangeError} no proposal to roll back.
   */
  rollback(row: number, accepted: number): number[] {
    const last = this.#last;
    if (!last) throw new RangeError("Cannot roll the draft back: no block was proposed");
    const model = this.model;
    model.select(model.rows === 1 ? 0 : row, this.#base + Math.min(accepted, last.draftLength - 1));
    this.#last = undefined;
    return accepted === last.draftLength ? [last.tokens[row][accepted - 1]] : [];
  }
}
