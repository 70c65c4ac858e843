/**
 * The scorer: runs the target model once per block over every draft, giving the target
 * distributions p at depths 0..L of each draft.
 *
 * @module
 */

import type { Kernel, Probs, WarpOptions } from "../kernel/types.ts";
import type { CausalModel } from "./model.ts";

/**
 * Target logits `[k, L + 1, vocab]` of one block, warped lazily: only the rows the verifier visits
 * are warped, each at most once.
 *
 * @example
 * ```ts
 * import { TargetScores } from "./scorer.ts";
 * import { referenceKernel } from "../kernel/reference.ts";
 * import assert from "node:assert/strict";
 * const scores = new TargetScores(referenceKernel, {}, new Float32Array([0, 0, 5, -5]), 1, 2, 2);
 * assert.deepEqual([...scores.probs(0, 0)], [0.5, 0.5]);
 * ```
 */
export class TargetScores {
  /** Raw target logits `[k, L + 1, vocab]`. */
  readonly logits: Float32Array;
  readonly #kernel: Kernel;
  readonly #warp: WarpOptions;
  readonly #depths: number;
  readonly #vocab: number;
  readonly #cache: (Probs | undefined)[];

  /**
   * Wraps one scoring forward's logits; rows are warped on first use.
   *
   * @param kernel Kernel used to warp.
   * @param warp The warp (same as the draft's).
   * @param logits `[k, depths, vocab]`.
   * @param k Drafts.
   * @param depths L + 1.
   * @param vocab V.
   */
  constructor(
    kernel: Kernel,
    warp: WarpOptions,
    logits: Float32Array,
    k: number,
    depths: number,
    vocab: number,
  ) {
    if (logits.length !== k * depths * vocab) {
      throw new RangeError(
        `Cannot read target scores: expected ${k}×${depths}×${vocab} = ${
          k * depths * vocab
        } logits, got ${logits.length}`,
      );
    }
    this.logits = logits;
    this.#kernel = kernel;
    this.#warp = warp;
    this.#depths = depths;
    this.#vocab = vocab;
    this.#cache = new Array(k * depths);
  }

  /** Warped target probs `[vocab]` of draft `row` at depth `depth` (after its tokens 0..depth−1). */
  probs(row: number, depth: number): Probs {
    const i = row * this.#depths + depth;
    let p = this.#cache[i];
    if (p === undefined) {
      const v = this.#vocab;
      p = this.#kernel.warp(this.logits.subarray(i * v, (i + 1) * v), this.#warp);
      this.#cache[i] = p;
    }
    return p;
  }
}

/** Options of {@linkcode TargetScorer}. */
export interface TargetScorerOptions {
  /** The target model; it must hold one row when `score` is called. */
  model: CausalModel;
  /** Kernel used to warp. */
  kernel: Kernel;
  /**
   * Warp applied to the target logits.
   * @default {{}}
   */
  warp?: WarpOptions;
}

/**
 * Scores a block in ONE target call: forks the target's row to k rows and appends, to row r, the
 * pending tokens followed by draft r's L tokens, keeping the last L + 1 positions.
 *
 * @example
 * ```ts
 * import { TargetScorer } from "./scorer.ts";
 * import { MarkovModel, randomMarkovTable } from "./markov.ts";
 * import { referenceKernel } from "../kernel/reference.ts";
 * import assert from "node:assert/strict";
 * const model = new MarkovModel({ table: randomMarkovTable(3, 1, 2), vocabSize: 3 });
 * const scorer = new TargetScorer({ model, kernel: referenceKernel });
 * const scores = await scorer.score([0], [Int32Array.of(1, 2), Int32Array.of(2, 2)], 2);
 * assert.equal(scores.logits.length, 2 * 3 * 3);
 * assert.equal(model.calls, 1);
 * scorer.rollback(1, 1); // keep draft 1, accepted one token
 * assert.deepEqual(model.tokens(), [0, 2]);
 * ```
 */
export class TargetScorer {
  /** The target model. */
  readonly model: CausalModel;
  readonly #kernel: Kernel;
  readonly #warp: WarpOptions;
  #base = -1;

  /** Wraps the target model; warps rows with the given kernel and options. */
  constructor(options: TargetScorerOptions) {
    this.model = options.model;
    this.#kernel = options.kernel;
    this.#warp = options.warp ?? {};
  }

  /**
   * Scores the drafts of one block.
   *
   * @param pending Tokens the target has not been fed yet (≥ 1).
   * @param drafts Draft tokens `[k][≥ L]`.
   * @param draftLength L ≥ 1: tokens of each draft to score.
   * @returns Target scores at depths 0..L per draft.
   * @throws {RangeError} from the model (context limit, bad ids).
   */
  async score(pending: ArrayLike<number>, drafts: Int32Array[], draftLength: number): Promise<TargetScores> {
    const model = this.model;
    model.fork(drafts.length);
    this.#base = model.length + pending.length;
    const rows = drafts.map((draft) => {
      const row = new Array<number>(pending.length + draftLength);
      for (let i = 0; i < pending.length; i++) row[i] = pending[i];
      for (let t = 0; t < draftLength; t++) row[pending.length + t] = draft[t];
      return row;
    });
    const logits = await model.append(rows, draftLength + 1);
    return new TargetScores(
      this.#kernel,
      this.#warp,
      logits,
      drafts.length,
      draftLength + 1,
      model.vocabSize,
    );
  }

  /**
   * Rolls the target back: keeps `row`, cut to the tokens fed before the block plus `accepted`
   * draft tokens.
   *
   * @throws {RangeError} no block was scored.
   */
  rollback(row: number, accepted: number): void {
    if (this.#base < 0) throw new RangeError("Cannot roll the target back: no block was scored");
    this.model.select(row, this.#base + accepted);
    this.#base = -1;
  }
}
