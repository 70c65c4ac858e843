/**
 * The proposer: runs the draft model to propose k sequences of L tokens, keeping the draft
 * distributions q at every (draft, depth) for the verifier.
 *
 * @module
 */

import type { Kernel, Probs, WarpOptions } from "../kernel/types.ts";
import type { Random } from "../random.ts";
import type { BlockProposal, DraftSampling } from "../verify/types.ts";
import type { CausalModel } from "./model.ts";
import type { EagleDrafterModel } from "./eagle_proposer.ts";

/** k draft sequences of L tokens and the draft probabilities they were drawn from. */
export interface DraftProposal extends BlockProposal {
  /** Drafts actually proposed: the k asked for, or fewer (a small support without replacement). */
  readonly k: number;
  /** Draft length L of this block: the length asked for, or less (a proposer may find fewer). */
  readonly draftLength: number;
  /** Draft tokens `[k][L]`. */
  readonly tokens: Int32Array[];
  /**
   * Warped draft probs `[k][L][vocab]`: `probs[r][t]` is q after the accepted prefix and draft r's
   * tokens 0..t−1 (depth 0 is one shared row).
   */
  readonly probs: Probs[][];
}

/** What the decoder asks a proposer for, per block. */
export interface ProposalRequest {
  /** Drafts wanted (≥ 1). */
  readonly k: number;
  /** Tokens per draft wanted (≥ 0; 0 proposes nothing and only takes the pending tokens). */
  readonly draftLength: number;
  /**
   * How the k depth-0 tokens must be drawn (the verifier's `draftSampling`).
   * @default {"iid"}
   */
  readonly sampling?: DraftSampling;
}

/**
 * The proposer role (vLLM's "proposer"/"drafter"): proposes the drafts of a block and forgets the
 * rejected part afterwards. {@linkcode DraftProposer} runs a draft model; `LookupProposer` matches
 * n-grams of the text so far. The block decoder drives any of them the same way:
 * `propose(pending, request, random)`, verification, then `rollback(row, accepted)`, whose return
 * value (plus the block's last token) is the next `pending`.
 *
 * A proposer that reads the target (EAGLE-style, `EagleProposer`) sets `needsTargetFeatures`; the
 * decoder then passes, with `pending`, the target's features `[pending.length, featureSize]`, row i
 * being the target's feature at the position just before `pending[i]` (the position whose logits
 * gave `pending[i]`). The decoder first runs the prompt x₀..x_{n−1} through the target alone (one
 * autoregressive step, giving x_n), so the first `pending` is x₁..x_n with the features of positions
 * 0..n−1 (x₀ has no position before it). Such a proposer's `rollback` must return exactly the
 * accepted draft tokens, so that the next `pending` is those plus the block's last token, with the
 * features of the positions of the block's pending token and of the accepted drafts.
 */
export interface Proposer {
  /** Stable name, for stats. */
  readonly name: string;
  /** Vocabulary size of its q rows (the target's). */
  readonly vocabSize: number;
  /** Forwards run so far (a draft model's), when the proposer counts them. */
  readonly calls?: number;
  /** Time inside its model's forwards so far, ms, when counted (for profiles). */
  readonly forwardMs?: number;
  /** Time keeping its model's KV cache so far, ms, when counted (for profiles). */
  readonly kvMs?: number;
  /**
   * Whether `propose` needs the target's features of the pending tokens (see above); the target
   * must then return features (`CausalModel.featureSize`).
   * @default {false}
   */
  readonly needsTargetFeatures?: boolean;
  /** Forgets everything (a new generation). */
  reset(): void;
  /**
   * Most draft tokens it can propose when `known` tokens (prompt + generated) are in the context.
   */
  room(known: number): number;
  /**
   * Takes the tokens it has not been given yet and proposes the drafts of one block.
   *
   * @param pending Tokens since the last call (the prompt at first; then the accepted tokens the
   *   last rollback returned, plus the block's last token).
   * @param request k, L and how depth-0 tokens must be drawn.
   * @param random Source of the uniforms (if it samples).
   * @param features Only for a proposer that `needsTargetFeatures`: the target's features
   *   `[pending.length, featureSize]`, row i at the position just before `pending[i]`.
   */
  propose(
    pending: ArrayLike<number>,
    request: ProposalRequest,
    random: Random,
    features?: Float32Array,
  ): Promise<DraftProposal>;
  /**
   * Forgets the rejected part of the last proposal.
   *
   * @param row A draft whose first `accepted` tokens were accepted.
   * @param accepted Draft tokens accepted (0..L).
   * @returns The accepted (and earlier) tokens it has not taken in yet; the decoder gives them back,
   *   followed by the block's last token, as the next `pending`.
   */
  rollback(row: number, accepted: number): number[];
}

/** What a registered proposer may be built from (see `proposers` in src/decode/proposers.ts). */
export interface ProposerParts {
  /** The target model. */
  readonly target: CausalModel;
  /** A draft model (same vocabulary as the target). */
  readonly draft?: CausalModel;
  /** A feature drafter (reads the target's features; the target must return them). */
  readonly drafter?: EagleDrafterModel;
  /** Kernel used to warp and sample. */
  readonly kernel: Kernel;
  /** The warp (the target's). */
  readonly warp: WarpOptions;
}

/** A registry entry: how to build one kind of proposer, and what the planner should know of it. */
export interface ProposerKind {
  /** The registry name. */
  readonly name: string;
  /** Most drafts per block its proposals hold (Infinity: as many as asked). */
  readonly maxDrafts: number;
  /** What it lacks to be built from `parts` (a phrase for an error message), or undefined. */
  missing(parts: ProposerParts): string | undefined;
  /** Builds a fresh proposer (one per generation). */
  create(parts: ProposerParts): Proposer;
  /**
   * A model whose forwards cost what one draft forward costs, for `auto`'s calibration;
   * undefined: drafting costs no forwards.
   */
  timingModel(parts: ProposerParts): CausalModel | undefined;
  /**
   * The model that drafts, as loaded (the generator reports its graph `file` in the stats);
   * undefined: none.
   */
  draftingModel(parts: ProposerParts): object | undefined;
}

/**
 * Checks a proposal request's k and L (every proposer's `propose` starts with it).
 *
 * @throws {RangeError} k not an integer ≥ 1, L not an integer ≥ 0.
 * @example
 * ```ts
 * import { checkProposalRequest } from "./proposer.ts";
 * import assert from "node:assert/strict";
 * checkProposalRequest(2, 0);
 * assert.throws(() => checkProposalRequest(0, 3), RangeError);
 * ```
 */
export function checkProposalRequest(k: number, draftLength: number): void {
  if (!Number.isInteger(k) || k < 1) {
    throw new RangeError(`Cannot propose drafts: k must be an integer >= 1, got ${k}`);
  }
  if (!Number.isInteger(draftLength) || draftLength < 0) {
    throw new RangeError(`Cannot propose drafts: draftLength must be an integer >= 0, got ${draftLength}`);
  }
}

/** Options of {@linkcode DraftProposer}. */
export interface DraftProposerOptions {
  /** The draft model. */
  model: CausalModel;
  /** Kernel used to warp and sample. */
  kernel: Kernel;
  /**
   * Warp applied to the draft logits (the same as the target's).
   * @default {{}}
   */
  warp?: WarpOptions;
}

/**
 * Proposes k drafts of L tokens per block with a draft model: one draft call for the pending tokens,
 * k depth-0 tokens drawn from q₀ (i.i.d., or without replacement with k capped at the tokens q₀ gives
 * mass to), a fork to k rows, then one draft call per depth 1..L−1 drawing one token per row from
 * that row's q. With without-replacement sampling only the depth-0 tokens are distinct; deeper tokens
 * are drawn independently per row. A request for L = 0 runs nothing: the pending tokens wait for the
 * next block that drafts.
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
 * const proposer = new DraftProposer({ model, kernel: referenceKernel });
 * const proposal = await proposer.propose([0, 1], { k: 2, draftLength: 3 }, new Random(5));
 * assert.equal(proposal.tokens.length, 2);
 * assert.equal(proposal.tokens[0].length, 3);
 * assert.equal(model.calls, 3);
 * ```
 */
export class DraftProposer implements Proposer {
  /** `"draft"`: a draft model. */
  readonly name = "draft";
  /** The draft model. */
  readonly model: CausalModel;
  readonly #kernel: Kernel;
  readonly #warp: WarpOptions;
  #base = 0;
  #waiting: number[] = [];
  #last: DraftProposal | undefined;

  /** Builds a proposer over the draft model. */
  constructor(options: DraftProposerOptions) {
    this.model = options.model;
    this.#kernel = options.kernel;
    this.#warp = options.warp ?? {};
  }

  /** The draft model's vocabulary size. */
  get vocabSize(): number {
    return this.model.vocabSize;
  }

  /** The draft model's forwards. */
  get calls(): number | undefined {
    return this.model.calls;
  }

  /** The draft model's time in forwards, ms (when it counts it). */
  get forwardMs(): number | undefined {
    return this.model.forwardMs;
  }

  /** The draft model's time keeping its KV cache, ms (when it counts it). */
  get kvMs(): number | undefined {
    return this.model.kvMs;
  }

  /** Resets the draft model. */
  reset(): void {
    this.model.reset();
    this.#waiting = [];
    this.#last = undefined;
  }

  /** The draft is fed L − 1 draft tokens after the pending ones: `maxLength − known + 1`. */
  room(known: number): number {
    return this.model.maxLength - known + 1;
  }

  /**
   * Feeds the pending tokens and proposes the drafts of one block.
   *
   * @param pending Tokens the draft has not been fed yet (≥ 1 in all).
   * @param request k ≥ 1, L ≥ 0, sampling.
   * @param random Source of the uniforms.
   * @returns The drafts and their q rows.
   * @throws {RangeError} k not an integer ≥ 1, L not an integer ≥ 0; from the model (context
   *   limit, bad ids).
   */
  async propose(
    pending: ArrayLike<number>,
    request: ProposalRequest,
    random: Random,
  ): Promise<DraftProposal> {
    const { draftLength, sampling = "iid" } = request;
    let k = request.k;
    checkProposalRequest(k, draftLength);
    const waiting = this.#waiting;
    for (let i = 0; i < pending.length; i++) waiting.push(pending[i]);
    if (draftLength === 0) {
      this.#last = { k: 1, draftLength: 0, tokens: [new Int32Array(0)], probs: [[]] };
      return this.#last;
    }
    const model = this.model;
    const kernel = this.#kernel;
    const vocab = model.vocabSize;
    const logits = await model.append([waiting], 1);
    this.#waiting = [];
    this.#base = model.length;
    const q0 = kernel.warp(logits, this.#warp);
    const withoutReplacement = sampling === "without-replacement";
    if (withoutReplacement) {
      let support = 0;
      for (let i = 0; i < q0.length; i++) if (q0[i] > 0) support++;
      k = Math.min(k, support);
    }
    const first = kernel.sample(q0, random.fill(new Float64Array(k)), withoutReplacement);
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
    this.#last = { k, draftLength, tokens, probs };
    return this.#last;
  }

  /**
   * Rolls the draft back to the accepted prefix of the last proposal: keeps `row`, cut to the
   * tokens fed before the block plus the accepted draft tokens it was fed (the draft is fed tokens
   * up to depth L − 2 only).
   *
   * @param row A draft whose first `accepted` tokens are the accepted ones.
   * @param accepted Draft tokens accepted (0..L).
   * @returns Tokens the draft has not been fed: the last draft token when all L were accepted, the
   *   waiting pending tokens after an L = 0 request, else none.
   * @throws {RangeError} no proposal to roll back.
   */
  rollback(row: number, accepted: number): number[] {
    const last = this.#last;
    if (!last) throw new RangeError("Cannot roll the draft back: no block was proposed");
    this.#last = undefined;
    if (last.draftLength === 0) {
      const waiting = this.#waiting;
      this.#waiting = [];
      return waiting;
    }
    const model = this.model;
    model.select(model.rows === 1 ? 0 : row, this.#base + Math.min(accepted, last.draftLength - 1));
    return accepted === last.draftLength ? [last.tokens[row][accepted - 1]] : [];
  }
}

/** The registry entry of {@linkcode DraftProposer}: needs a draft model (`parts.draft`). */
export const draftProposerKind: ProposerKind = Object.freeze({
  name: "draft",
  maxDrafts: Infinity,
  missing: (parts: ProposerParts) => (parts.draft === undefined ? "a draft model" : undefined),
  create: (parts: ProposerParts) =>
    new DraftProposer({ model: parts.draft!, kernel: parts.kernel, warp: parts.warp }),
  timingModel: (parts: ProposerParts) => parts.draft,
  draftingModel: (parts: ProposerParts) => parts.draft,
});
