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
  readonly #index: Int32Array | undefined;

  /**
   * Wraps one scoring forward's logits; rows are warped on first use.
   *
   * @param kernel Kernel used to warp.
   * @param warp The warp (same as the draft's).
   * @param logits `[k, depths, vocab]`.
   * @param k Drafts.
   * @param depths L + 1.
   * @param vocab V.
   * @param index Where each (row, depth) lives in `logits` (`index[row·depths + depth]` is a row of
   *   `[nodes, vocab]` logits), for tree scoring; by default `logits` is `[k, depths, vocab]`.
   */
  constructor(
    kernel: Kernel,
    warp: WarpOptions,
    logits: Float32Array,
    k: number,
    depths: number,
    vocab: number,
    index?: Int32Array,
  ) {
    if (index) {
      if (index.length !== k * depths || logits.length % vocab !== 0) {
        throw new RangeError(
          `Cannot read target scores: expected an index of ${k}×${depths} and [nodes, ${vocab}] logits, got ${index.length} and ${logits.length}`,
        );
      }
    } else if (logits.length !== k * depths * vocab) {
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
    this.#index = index;
  }

  /** Warped target probs `[vocab]` of draft `row` at depth `depth` (after its tokens 0..depth−1). */
  probs(row: number, depth: number): Probs {
    const i = row * this.#depths + depth;
    let p = this.#cache[i];
    if (p === undefined) {
      const v = this.#vocab;
      const at = this.#index ? this.#index[i] : i;
      p = this.#kernel.warp(this.logits.subarray(at * v, (at + 1) * v), this.#warp);
      this.#cache[i] = p;
    }
    return p;
  }
}

/** Rows `rows` of a `[n, f]` matrix, in that order. */
function gatherRows(matrix: Float32Array, rows: readonly number[], f: number): Float32Array {
  const out = new Float32Array(rows.length * f);
  for (let i = 0; i < rows.length; i++) out.set(matrix.subarray(rows[i] * f, (rows[i] + 1) * f), i * f);
  return out;
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
  /**
   * Score k ≥ 2 drafts as one row of their merged token tree when the model supports it
   * (`supportsTree`): shared prefixes are scored once and no KV copy is made.
   * @default {true}
   */
  tree?: boolean;
  /**
   * Keep the target's features of each block's kept positions ({@linkcode TargetScorer.keptFeatures});
   * the model must return features (`featureSize`, `lastFeatures`).
   * @default {false}
   */
  features?: boolean;
}

/**
 * Scores a block in ONE target call: forks the target's row to k rows and appends, to row r, the
 * pending tokens followed by draft r's L tokens, keeping the last L + 1 positions. When the model
 * supports tree attention (`supportsTree`, e.g. graphs from our GGUF converter) and k ≥ 2, the k
 * drafts are instead one row of their merged token tree (shared prefixes once, no KV copies), and
 * rollback keeps the accepted path's entries.
 *
 * @example Two drafts as two rows (a model without tree attention)
 * ```ts
 * import { TargetScorer } from "./scorer.ts";
 * import { MarkovModel, randomMarkovTable } from "./markov.ts";
 * import { referenceKernel } from "../kernel/reference.ts";
 * import assert from "node:assert/strict";
 * const model = new MarkovModel({ table: randomMarkovTable(3, 1, 2), vocabSize: 3, tree: false });
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
  readonly #tree: boolean;
  #base = -1;
  #pendingNodes = 0;
  #nodeOf: Int32Array[] | undefined;
  readonly #features: boolean;
  /** Features of the last scoring forward (the model's lastFeatures()) and its tokens per row. */
  #scored: { features: Float32Array; tokens: number; pending: number } | undefined;
  #kept: Float32Array | undefined;
  /** Shape of the last scoring forward: rows × tokens per row (a tree: 1 × nodes). */
  lastShape: { rows: number; tokens: number } = { rows: 0, tokens: 0 };

  /** Wraps the target model; warps rows with the given kernel and options. */
  constructor(options: TargetScorerOptions) {
    this.model = options.model;
    this.#kernel = options.kernel;
    this.#warp = options.warp ?? {};
    this.#tree = options.tree ?? true;
    this.#features = options.features ?? false;
    if (this.#features && (this.model.featureSize === undefined || this.model.lastFeatures === undefined)) {
      throw new RangeError(
        "Cannot build a target scorer with features: the model returns no target features (featureSize is undefined)",
      );
    }
  }

  /**
   * The target's features of the positions the last rollback kept: the block's pending tokens, then
   * the accepted draft tokens — `[pending.length + accepted, featureSize]`, row i the feature of the
   * position holding the i-th of those tokens (a function of the context up to and including it).
   *
   * @throws {RangeError} the scorer was built without `features`, or no block was rolled back.
   */
  keptFeatures(): Float32Array {
    if (!this.#features) {
      throw new RangeError("Cannot read kept features: the scorer was built without features");
    }
    if (!this.#kept) throw new RangeError("Cannot read kept features: no block was rolled back");
    return this.#kept;
  }

  /** Whether k ≥ 2 drafts are scored as a tree (the option is on and the model supports it). */
  get scoresTrees(): boolean {
    return this.#tree && this.model.supportsTree === true && this.model.appendTree !== undefined;
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
    if (drafts.length > 1 && draftLength > 0 && this.scoresTrees) {
      return this.#scoreTree(pending, drafts, draftLength);
    }
    const model = this.model;
    this.#nodeOf = undefined;
    this.lastShape = { rows: drafts.length, tokens: pending.length + draftLength };
    model.fork(drafts.length);
    this.#base = model.length + pending.length;
    const rows = drafts.map((draft) => {
      const row = new Array<number>(pending.length + draftLength);
      for (let i = 0; i < pending.length; i++) row[i] = pending[i];
      for (let t = 0; t < draftLength; t++) row[pending.length + t] = draft[t];
      return row;
    });
    const logits = await model.append(rows, draftLength + 1);
    this.#keepScoredFeatures(pending.length + draftLength, pending.length);
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
    const nodeOf = this.#nodeOf;
    const scored = this.#scored;
    this.#scored = undefined;
    this.#kept = undefined;
    if (nodeOf) {
      const path: number[] = [];
      for (let i = 0; i < this.#pendingNodes; i++) path.push(i);
      for (let t = 0; t < accepted; t++) path.push(nodeOf[row][t]);
      this.model.keepTreePath!(path);
      this.#nodeOf = undefined;
      if (scored) this.#kept = gatherRows(scored.features, path, scored.features.length / scored.tokens);
    } else {
      this.model.select(row, this.#base + accepted);
      if (scored) {
        const f = scored.features.length / (this.lastShape.rows * scored.tokens);
        const at = row * scored.tokens * f;
        this.#kept = scored.features.slice(at, at + (scored.pending + accepted) * f);
      }
    }
    this.#base = -1;
  }

  #keepScoredFeatures(tokens: number, pending: number): void {
    this.#scored = this.#features ? { features: this.model.lastFeatures!(), tokens, pending } : undefined;
  }

  /**
   * One row of the merged tree: the pending tokens as a chain, then each draft's tokens as a path
   * from the last pending token, sharing nodes with earlier drafts while their prefixes agree.
   */
  async #scoreTree(
    pending: ArrayLike<number>,
    drafts: Int32Array[],
    draftLength: number,
  ): Promise<TargetScores> {
    const model = this.model;
    const tokens: number[] = [];
    const parents: number[] = [];
    for (let i = 0; i < pending.length; i++) {
      tokens.push(pending[i]);
      parents.push(i - 1);
    }
    const last = pending.length - 1;
    const children = new Map<string, number>();
    const nodeOf = drafts.map(() => new Int32Array(draftLength));
    for (let r = 0; r < drafts.length; r++) {
      let parent = last;
      for (let t = 0; t < draftLength; t++) {
        const key = `${parent} ${drafts[r][t]}`;
        let node = children.get(key);
        if (node === undefined) {
          node = tokens.length;
          tokens.push(drafts[r][t]);
          parents.push(parent);
          children.set(key, node);
        }
        nodeOf[r][t] = node;
        parent = node;
      }
    }
    this.#base = model.length + pending.length;
    this.#pendingNodes = pending.length;
    this.#nodeOf = nodeOf;
    this.lastShape = { rows: 1, tokens: tokens.length };
    const logits = await model.appendTree!(tokens, parents);
    this.#keepScoredFeatures(tokens.length, pending.length);
    const depths = draftLength + 1;
    const index = new Int32Array(drafts.length * depths);
    for (let r = 0; r < drafts.length; r++) {
      index[r * depths] = last;
      for (let t = 1; t < depths; t++) index[r * depths + t] = nodeOf[r][t - 1];
    }
    return new TargetScores(this.#kernel, this.#warp, logits, drafts.length, depths, model.vocabSize, index);
  }
}
