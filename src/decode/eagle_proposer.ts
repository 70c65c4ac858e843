/**
 * EAGLE-style drafting (Li et al., 2024, "EAGLE: Speculative Sampling Requires Rethinking Feature
 * Uncertainty"): a one-layer drafter that reads the target's own hidden states, so it drafts from
 * what the target computed rather than from tokens alone. The drafter graphs and the exact
 * position / feature alignment are fixed in docs/eagle_drafter.md; the decoder hands the proposer
 * the target's features of its pending tokens (`Proposer.needsTargetFeatures`).
 *
 * @module
 */

import type { Kernel, Probs, WarpOptions } from "../kernel/types.ts";
import type { Random } from "../random.ts";
import type { CausalModel } from "./model.ts";
import {
  checkProposalRequest,
  type DraftProposal,
  type ProposalRequest,
  type Proposer,
  type ProposerKind,
  type ProposerParts,
} from "./proposer.ts";

/**
 * The drafter a {@linkcode EagleProposer} drives (`OnnxEagleDrafter` in src/model/eagle_drafter.ts
 * runs the folder's graphs): a fuse map from target features to its hidden size, and one step of a
 * decoder layer over (token, hidden) pairs with a KV cache per row.
 */
export interface EagleDrafterModel {
  /** The target's vocabulary size (the q rows' width). */
  readonly vocabSize: number;
  /**
   * d2t `[draftVocab]`: slot s of `append`'s logits is target token `draftToTarget[s]`, strictly
   * ascending ids below `vocabSize`; absent: the logits are over the whole vocabulary (slot = id).
   */
  readonly draftToTarget?: Int32Array;
  /** Hidden size of `fuse`'s output and of `append`'s hidden inputs / outputs. */
  readonly hiddenSize: number;
  /** Floats per target feature. */
  readonly featureSize: number;
  /** Context limit in positions. */
  readonly maxLength: number;
  /** Rows held. */
  readonly rows: number;
  /** Positions held per row. */
  readonly length: number;
  /** Step forwards run so far. */
  readonly calls?: number;
  /** One empty row. */
  reset(): void;
  /** Target features `[positions, featureSize]` → hidden inputs `[positions, hiddenSize]`. */
  fuse(features: Float32Array, positions: number): Promise<Float32Array>;
  /**
   * Appends (token, hidden) pairs: `tokens[r]` (length T) with `hidden [rows, T, hiddenSize]`;
   * returns the last position's logits over the draft slots `[rows, draftVocab]` and its hidden
   * output `[rows, hiddenSize]`.
   */
  append(
    tokens: ArrayLike<number>[],
    hidden: Float32Array,
  ): Promise<{ logits: Float32Array; hidden: Float32Array }>;
  /** Copies the one row to `rows` rows. */
  fork(rows: number): void;
  /** Keeps row `row` cut to `length` positions. */
  select(row: number, length: number): void;
}

/** Options of {@linkcode EagleProposer}. */
export interface EagleProposerOptions {
  /** The drafter. */
  drafter: EagleDrafterModel;
  /** Kernel used to warp and sample. */
  kernel: Kernel;
  /**
   * Warp applied to the draft logits (the same as the target's).
   * @default {{}}
   */
  warp?: WarpOptions;
}

/**
 * Proposes k drafts of L tokens per block with a feature drafter. With the target's features
 * f_j of its pending tokens (f_j at the position before each token), it feeds the pairs
 * (fuse(f_j), x_{j+1}) in one step; the last position's logits are q₀ and its hidden output g.
 * It draws k depth-0 tokens from q₀ (i.i.d., or without replacement with k capped at q₀'s
 * support), forks to k rows, and for depth t = 1..L−1 feeds each row (its previous hidden output,
 * its token t − 1) and draws one token per row from that row's q. Uniforms in
 * {@linkcode DraftProposer}'s order: k for depth 0, then one per row per depth in row order.
 *
 * Reduced vocabulary: the drafter's logits cover only its draft slots (d2t, strictly ascending
 * target ids). The warp and the draws run on those slots, and each q row handed to the verifier is
 * the warped slot row scattered to `[vocab]` (zeros outside d2t) — the very values sampled from,
 * so exactness holds whatever the drafter. This is the full-vocabulary rule "logits −Infinity
 * outside d2t, then warp" computed in the smaller space: temperature scales each finite logit;
 * top-k keeps logits ≥ the k-th largest, and −Infinity entries are never above a finite one (with
 * k beyond the slots every −Infinity entry is kept at probability 0); softmax gives them e^−∞ = 0
 * and the same normaliser; top-p sorts by probability, and zero-mass entries add nothing to the
 * nucleus; greedy ties go to the lowest slot = the lowest id (d2t ascending). Inverse-CDF draws
 * agree too: d2t is ascending, so the slot order is the id order and the zeros between add no mass.
 *
 * Rollback cuts the drafter back to the positions fed with target features (the self-fed depth
 * entries go) and returns the accepted draft tokens; the decoder passes them back, with the
 * block's last token and the target's features of their positions, as the next pending tokens.
 * A request for L = 0 runs nothing: the pending pairs wait for the next block that drafts.
 *
 * @example A stand-in drafter with one hidden unit (real use: `OnnxEagleDrafter`)
 * ```ts
 * import { EagleProposer, type EagleDrafterModel } from "./eagle_proposer.ts";
 * import { referenceKernel } from "../kernel/reference.ts";
 * import { Random } from "../random.ts";
 * import assert from "node:assert/strict";
 * let rows = 1, length = 0;
 * const drafter: EagleDrafterModel = {
 *   vocabSize: 3, hiddenSize: 1, featureSize: 2, maxLength: 64,
 *   get rows() { return rows; }, get length() { return length; },
 *   reset() { rows = 1; length = 0; },
 *   fuse: (f, n) => Promise.resolve(new Float32Array(n)),
 *   append(tokens, _h) {
 *     length += tokens[0].length;
 *     return Promise.resolve({ logits: new Float32Array(tokens.length * 3), hidden: new Float32Array(tokens.length) });
 *   },
 *   fork(k) { rows = k; },
 *   select(_r, n) { rows = 1; length = n; },
 * };
 * const proposer = new EagleProposer({ drafter, kernel: referenceKernel });
 * proposer.reset();
 * const proposal = await proposer.propose([1, 2], { k: 2, draftLength: 3 }, new Random(1), new Float32Array(4));
 * assert.equal(proposal.tokens.length, 2);
 * assert.deepEqual(proposer.rollback(1, 2), [...proposal.tokens[1].subarray(0, 2)]);
 * assert.equal(drafter.length, 2);
 * ```
 */
export class EagleProposer implements Proposer {
  /** `"eagle"`: a feature drafter. */
  readonly name = "eagle";
  /** It reads the target's features. */
  readonly needsTargetFeatures = true;
  /** The drafter. */
  readonly drafter: EagleDrafterModel;
  readonly #kernel: Kernel;
  readonly #warp: WarpOptions;
  #waiting: number[] = [];
  #waitingFeatures: Float32Array[] = [];
  #base = 0;
  #last: DraftProposal | undefined;

  /** Builds a proposer over the drafter. */
  constructor(options: EagleProposerOptions) {
    this.drafter = options.drafter;
    this.#kernel = options.kernel;
    this.#warp = options.warp ?? {};
  }

  /** The drafter's vocabulary size (the target's). */
  get vocabSize(): number {
    return this.drafter.vocabSize;
  }

  /** The drafter's step forwards. */
  get calls(): number | undefined {
    return this.drafter.calls;
  }

  /** Resets the drafter. */
  reset(): void {
    this.drafter.reset();
    this.#waiting = [];
    this.#waitingFeatures = [];
    this.#base = 0;
    this.#last = undefined;
  }

  /** Positions fed before the block (≤ known − 1) plus L − 1 depth entries: `maxLength − known + 1`. */
  room(known: number): number {
    return this.drafter.maxLength - known + 1;
  }

  /**
   * Feeds the pending (feature, token) pairs and proposes the drafts of one block.
   *
   * @param pending Tokens since the last block (≥ 1).
   * @param request k ≥ 1, L ≥ 0, sampling.
   * @param random Source of the uniforms.
   * @param features The target's features `[pending.length, featureSize]`, row i at the position
   *   before `pending[i]`.
   * @returns The drafts and their q rows.
   * @throws {RangeError} k or L out of range, features missing or of the wrong length; from the
   *   drafter (context limit).
   */
  async propose(
    pending: ArrayLike<number>,
    request: ProposalRequest,
    random: Random,
    features?: Float32Array,
  ): Promise<DraftProposal> {
    const { draftLength, sampling = "iid" } = request;
    let k = request.k;
    checkProposalRequest(k, draftLength);
    const drafter = this.drafter, f = drafter.featureSize;
    if (!(features instanceof Float32Array) || features.length !== pending.length * f) {
      throw new RangeError(
        `Cannot propose drafts: the eagle proposer needs the target's features of its ${pending.length} pending tokens (${
          pending.length * f
        } floats), got ${features?.length ?? "none"}`,
      );
    }
    for (let i = 0; i < pending.length; i++) this.#waiting.push(pending[i]);
    this.#waitingFeatures.push(features);
    if (draftLength === 0) {
      this.#last = { k: 1, draftLength: 0, tokens: [new Int32Array(0)], probs: [[]] };
      return this.#last;
    }
    const tokensIn = this.#waiting, n = tokensIn.length;
    const all = concat(this.#waitingFeatures, n * f);
    const u0 = await drafter.fuse(all, n);
    const first = await drafter.append([tokensIn], u0);
    this.#waiting = [];
    this.#waitingFeatures = [];
    this.#base = drafter.length;
    const kernel = this.#kernel, hs = drafter.hiddenSize, d2t = drafter.draftToTarget;
    const width = d2t?.length ?? drafter.vocabSize;
    if (first.logits.length !== width) {
      throw new RangeError(
        `Cannot propose drafts: the drafter returned ${first.logits.length} logits, expected ${width}`,
      );
    }
    const slotsQ0 = kernel.warp(first.logits, this.#warp);
    const q0 = this.#scatter(slotsQ0);
    const withoutReplacement = sampling === "without-replacement";
    if (withoutReplacement) {
      let support = 0;
      for (let i = 0; i < slotsQ0.length; i++) if (slotsQ0[i] > 0) support++;
      k = Math.min(k, support);
    }
    const depth0 = kernel.sample(slotsQ0, random.fill(new Float64Array(k)), withoutReplacement);
    const tokens: Int32Array[] = [];
    const probs: Probs[][] = [];
    for (let r = 0; r < k; r++) {
      tokens.push(new Int32Array(draftLength));
      tokens[r][0] = d2t ? d2t[depth0[r]] : depth0[r];
      probs.push([q0]);
    }
    if (draftLength > 1) {
      drafter.fork(k);
      let hidden: Float32Array = new Float32Array(k * hs);
      for (let r = 0; r < k; r++) hidden.set(first.hidden, r * hs);
      const u = [0];
      for (let t = 1; t < draftLength; t++) {
        const step = await drafter.append(tokens.map((row) => [row[t - 1]]), hidden);
        hidden = step.hidden;
        for (let r = 0; r < k; r++) {
          const slotsQ = kernel.warp(step.logits.subarray(r * width, (r + 1) * width), this.#warp);
          probs[r].push(this.#scatter(slotsQ));
          u[0] = random.next();
          const slot = kernel.sample(slotsQ, u)[0];
          tokens[r][t] = d2t ? d2t[slot] : slot;
        }
      }
    }
    this.#last = { k, draftLength, tokens, probs };
    return this.#last;
  }

  /** A warped slot row as a `[vocab]` q row: `q[d2t[s]] = slots[s]`, zeros elsewhere. */
  #scatter(slots: Probs): Probs {
    const d2t = this.drafter.draftToTarget;
    if (!d2t) return slots;
    const q = slots instanceof Float64Array
      ? new Float64Array(this.drafter.vocabSize)
      : new Float32Array(this.drafter.vocabSize);
    for (let s = 0; s < d2t.length; s++) q[d2t[s]] = slots[s];
    return q;
  }

  /**
   * Cuts the drafter back to the positions fed with target features (the depth entries of the
   * block go) and returns the accepted draft tokens, which the decoder passes back, with the
   * block's last token and their features, as the next pending tokens.
   *
   * @param row The draft kept.
   * @param accepted Draft tokens accepted (0..L).
   * @returns The first `accepted` tokens of draft `row`.
   * @throws {RangeError} no proposal to roll back, accepted out of range.
   */
  rollback(row: number, accepted: number): number[] {
    const last = this.#last;
    if (!last) throw new RangeError("Cannot roll the eagle proposer back: no block was proposed");
    if (!Number.isInteger(accepted) || accepted < 0 || accepted > last.draftLength) {
      throw new RangeError(
        `Cannot roll the eagle proposer back: accepted must be an integer in [0, ${last.draftLength}], got ${accepted}`,
      );
    }
    this.#last = undefined;
    if (last.draftLength === 0) return [];
    const drafter = this.drafter;
    drafter.select(drafter.rows === 1 ? 0 : row, this.#base);
    return Array.from(last.tokens[row].subarray(0, accepted));
  }
}

function concat(parts: Float32Array[], length: number): Float32Array {
  if (parts.length === 1) return parts[0];
  const out = new Float32Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * The drafter as a {@linkcode CausalModel} for timing only (auto's cost calibration): appends
 * tokens with zero hidden inputs and returns its last position's draft-slot logits (`keep` must be
 * 1; `vocabSize` is the slot count). Not a language model: never decode with it.
 */
export function drafterTimingModel(drafter: EagleDrafterModel): CausalModel {
  return {
    get vocabSize() {
      return drafter.draftToTarget?.length ?? drafter.vocabSize;
    },
    get maxLength() {
      return drafter.maxLength;
    },
    get rows() {
      return drafter.rows;
    },
    get length() {
      return drafter.length;
    },
    get calls() {
      return drafter.calls;
    },
    reset: () => drafter.reset(),
    fork: (rows) => drafter.fork(rows),
    select: (row, length) => drafter.select(row, length),
    async append(tokens, keep) {
      if (keep !== 1) {
        throw new RangeError(
          `Cannot time the drafter: it returns the last position only (keep 1), got keep ${keep}`,
        );
      }
      const hidden = new Float32Array(tokens.length * tokens[0].length * drafter.hiddenSize);
      return (await drafter.append(tokens, hidden)).logits;
    },
  };
}

/** The registry entry of {@linkcode EagleProposer}: needs a feature drafter (`parts.drafter`). */
export const eagleProposerKind: ProposerKind = Object.freeze({
  name: "eagle",
  maxDrafts: Infinity,
  missing: (parts: ProposerParts) =>
    parts.drafter === undefined ? "a feature drafter (a folder with model_type spectr_eagle)" : undefined,
  create: (parts: ProposerParts) =>
    new EagleProposer({ drafter: parts.drafter!, kernel: parts.kernel, warp: parts.warp }),
  timingModel: (parts: ProposerParts) => (parts.drafter ? drafterTimingModel(parts.drafter) : undefined),
  draftingModel: (parts: ProposerParts) => parts.drafter,
});
