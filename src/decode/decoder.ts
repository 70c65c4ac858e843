/**
 * The block decoder: the driver of speculative decoding (SpecTr, Sun et al., NeurIPS 2023). Each
 * block, the draft proposes k sequences of L tokens ({@linkcode DraftProposer}), the target scores
 * all of them in one call ({@linkcode TargetScorer}), the verifier walk keeps a prefix and adds one
 * recovered or bonus token ({@linkcode walkBlock}), and both models roll back to the accepted row.
 * Every output token is an exact sample of the (warped) target distribution.
 *
 * @module
 */

import { resolveWarp } from "../kernel/validate.ts";
import type { Kernel, WarpOptions } from "../kernel/types.ts";
import { getVerifier } from "../verify/mod.ts";
import type { Verifier } from "../verify/types.ts";
import { beginEventLoopTurns, endEventLoopTurns, yieldToEventLoop } from "../event_loop.ts";
import { collect, OutputBuffer, resolveGenerate, throwIfAborted } from "./_generation.ts";
import type { CausalModel } from "./model.ts";
import { type BlockPlan, type BlockPlanner, FixedPlanner } from "./plan.ts";
import { DraftProposer, type Proposer } from "./proposer.ts";
import { TargetScorer } from "./scorer.ts";
import { StatsRecorder } from "./stats.ts";
import type { Decoder, GenerateOptions, GenerateResult } from "./types.ts";

/** Options of {@linkcode BlockDecoder}. */
export interface BlockDecoderOptions {
  /** The large model whose distribution the output follows. */
  target: CausalModel;
  /** The small model that proposes drafts (same vocabulary as the target), unless `proposer` is given. */
  draft?: CausalModel;
  /** Any proposer (e.g. a `LookupProposer`); overrides `draft`. */
  proposer?: Proposer;
  /** Kernel for warping, sampling and verification (the WASM kernel or the reference). */
  kernel: Kernel;
  /**
   * The verification rule, or its name in the registry (`verifiers` in src/verify/mod.ts); ignored
   * when `planner` is given.
   */
  verifier?: Verifier | string;
  /**
   * Drafts per block (an integer in [1, the verifier's `maxCandidates`]).
   * @default {1}
   */
  k?: number;
  /**
   * Draft length L per block (an integer ≥ 1).
   * @default {4}
   */
  draftLength?: number;
  /** Chooses (verifier, k, L) per block from the past blocks (e.g. `auto`); overrides the three above. */
  planner?: BlockPlanner;
  /**
   * Warp applied to both models' logits; the output is exact for the warped target.
   * @default {{}}
   */
  warp?: WarpOptions;
  /**
   * Score k ≥ 2 drafts as one row of their merged tree when the target supports it (see
   * {@linkcode TargetScorer}); false scores them as k rows.
   * @default {true}
   */
  tree?: boolean;
}

/**
 * Checks a plan against the verifier's limits.
 *
 * @throws {RangeError} k not an integer in [1, maxCandidates], draftLength not an integer ≥ 0.
 */
export function checkPlan(plan: BlockPlan, where = "Cannot build a block decoder"): void {
  const { verifier, k, draftLength } = plan;
  if (!Number.isInteger(k) || k < 1 || k > verifier.maxCandidates) {
    throw new RangeError(
      `${where}: k must be an integer in [1, ${verifier.maxCandidates}] for ${verifier.name}, got ${k}`,
    );
  }
  if (!Number.isInteger(draftLength) || draftLength < 0) {
    throw new RangeError(`${where}: draftLength must be an integer >= 1, got ${draftLength}`);
  }
}

/**
 * Speculative block decoding with a pluggable verifier.
 *
 * A block yields 1..L+1 tokens for one target call and L draft calls. Uniforms come from one
 * `Random`, in a fixed order per block — the proposer's (k at depth 0, then one per draft per
 * depth 1..L−1), the verifier's (k' + 1 per depth visited), then one for the bonus token — so a seed
 * reproduces a run exactly, whichever kernel computes the same math.
 *
 * Context limit: a block feeds the target the pending tokens plus L draft tokens, and the draft
 * its pending tokens plus L − 1. With n = prompt + generated tokens so far, a block runs with
 * L' = min(L, target.maxLength − n, draft.maxLength − n + 1); when L' < 1 the target, if it can
 * still be fed its pending tokens, gives one last token on its own (as `autoregressive` does), and
 * the generation stops cleanly with `stopReason: "length"`. Neither model is ever fed more than its `maxLength` tokens
 * (the last token of the output is predicted, not fed, so n may end at target.maxLength + 1).
 *
 * The models are stateful: run one generation at a time per decoder (and per model); each
 * generation starts by resetting both models.
 *
 * @example K-SEQ with 2 drafts of 3 tokens on toy Markov models
 * ```ts
 * import { BlockDecoder } from "./decoder.ts";
 * import { MarkovModel, nearMarkovTable, randomMarkovTable } from "./markov.ts";
 * import { referenceKernel } from "../kernel/reference.ts";
 * import assert from "node:assert/strict";
 * const table = randomMarkovTable(5, 1, 1);
 * const target = new MarkovModel({ table, vocabSize: 5 });
 * const draft = new MarkovModel({ table: nearMarkovTable(table, 5, 2), vocabSize: 5 });
 * const decoder = new BlockDecoder({ target, draft, kernel: referenceKernel, verifier: "kseq", k: 2, draftLength: 3 });
 * const { tokens, stats } = await decoder.generate([0], { maxNewTokens: 10, seed: 7 });
 * assert.equal(tokens.length, 10);
 * assert.equal(stats.targetCalls, stats.blocks);
 * ```
 */
export class BlockDecoder implements Decoder {
  /** The planner's name: the verifier's, or `auto`. */
  readonly method: string;
  /** The planner choosing each block's verifier, k and L. */
  readonly planner: BlockPlanner;
  /** The proposer. */
  readonly proposer: Proposer;
  readonly #target: CausalModel;
  readonly #kernel: Kernel;
  readonly #warp: WarpOptions;
  readonly #tree: boolean;

  /**
   * Builds the driver over a target, a proposer (or draft model), a kernel and a verifier (or planner).
   *
   * @throws {RangeError} unknown verifier name, k not an integer in [1, maxCandidates], draftLength
   *   not an integer ≥ 1, no draft model nor proposer, proposer and target vocabularies of different
   *   sizes, bad warp.
   */
  constructor(options: BlockDecoderOptions) {
    const { target, kernel, k = 1, draftLength = 4, warp = {} } = options;
    resolveWarp(warp);
    let planner = options.planner;
    if (!planner) {
      if (options.verifier === undefined) {
        throw new RangeError("Cannot build a block decoder: give a verifier (or a planner)");
      }
      const verifier = typeof options.verifier === "string"
        ? getVerifier(options.verifier)
        : options.verifier;
      const plan = { verifier, k, draftLength };
      checkPlan(plan);
      if (draftLength < 1) {
        throw new RangeError(
          `Cannot build a block decoder: draftLength must be an integer >= 1, got ${draftLength}`,
        );
      }
      planner = new FixedPlanner(plan);
    }
    const proposer: Proposer | undefined = options.proposer ??
      (options.draft ? new DraftProposer({ model: options.draft, kernel, warp }) : undefined);
    if (!proposer) throw new RangeError("Cannot build a block decoder: give a draft model or a proposer");
    if (proposer.needsTargetFeatures && (target.featureSize === undefined || !target.lastFeatures)) {
      throw new RangeError(
        `Cannot build a block decoder: the ${proposer.name} proposer reads target features, but the target returns none (featureSize is undefined; load it with features)`,
      );
    }
    if (proposer.vocabSize !== target.vocabSize) {
      throw new RangeError(
        `Cannot build a block decoder: the draft vocabulary (${proposer.vocabSize}) differs from the target's (${target.vocabSize})`,
      );
    }
    this.method = planner.name;
    this.planner = planner;
    this.proposer = proposer;
    this.#target = target;
    this.#kernel = kernel;
    this.#warp = { ...warp };
    this.#tree = options.tree ?? true;
  }

  /** The verifier of a fixed plan (the first plan of a planner). */
  get verifier(): Verifier {
    return this.planner.plan().verifier;
  }

  /** Drafts per block of a fixed plan. */
  get k(): number {
    return this.planner.plan().k;
  }

  /** Draft length of a fixed plan. */
  get draftLength(): number {
    return this.planner.plan().draftLength;
  }

  /**
   * Generates up to `maxNewTokens` tokens after the prompt.
   *
   * @param promptIds Prompt token ids (≥ 1; a Markov model of order m needs ≥ m).
   * @param options maxNewTokens, seed or random, eosTokenId, signal.
   * @returns The tokens and the stats.
   * @throws {RangeError} bad prompt or options; a prompt longer than the context limit.
   * @throws The signal's reason (a DOMException "AbortError" by default) when aborted.
   */
  generate(promptIds: ArrayLike<number>, options: GenerateOptions): Promise<GenerateResult> {
    return collect(this.stream(promptIds, options));
  }

  /**
   * Generates block by block, yielding each block's kept tokens; returns the full result.
   *
   * @throws {RangeError} bad prompt or options; a prompt longer than the context limit.
   * @throws The signal's reason when aborted (checked before each block and before each yield).
   */
  async *stream(
    promptIds: ArrayLike<number>,
    options: GenerateOptions,
  ): AsyncGenerator<number[], GenerateResult> {
    beginEventLoopTurns();
    try {
      return yield* this.#blocks(promptIds, options);
    } finally {
      endEventLoopTurns();
    }
  }

  async *#blocks(
    promptIds: ArrayLike<number>,
    options: GenerateOptions,
  ): AsyncGenerator<number[], GenerateResult> {
    const target = this.#target;
    const proposer = this.proposer;
    const planner = this.planner;
    const kernel = this.#kernel;
    const run = resolveGenerate(
      promptIds,
      options,
      target.vocabSize,
      Math.min(target.maxLength, proposer.room(0) - 1),
    );
    const { random, signal } = run;
    throwIfAborted(signal);
    const output = new OutputBuffer(run.maxNewTokens, run.eos, run.stopWhen);
    const featured = proposer.needsTargetFeatures === true;
    const scorer = new TargetScorer({
      model: target,
      kernel,
      warp: this.#warp,
      tree: this.#tree,
      features: featured,
    });
    target.reset();
    proposer.reset();
    planner.start();
    const stats = new StatsRecorder(planner instanceof FixedPlanner ? planner.plan().draftLength : 0);
    let targetPending = run.prompt;
    let draftPending = run.prompt;
    let draftFeatures: Float32Array | undefined; // a feature proposer's: [draftPending.length, F]
    let known = run.prompt.length; // prompt + generated tokens so far
    let lastEnd: number | undefined; // when the previous block ended
    if (featured) {
      // A proposer that reads the target's features needs them for the prompt first: the target
      // alone gives the first token (an autoregressive step, one uniform), as `autoregressive` does.
      await yieldToEventLoop();
      throwIfAborted(signal);
      let now = performance.now();
      const empty = { k: 1, draftLength: 0, tokens: [new Int32Array(0)], probs: [[]] };
      const scores = await stats.profile("target", target, kernel, async () => {
        const scores = await stats.count(
          "targetCalls",
          target,
          () => scorer.score(run.prompt, empty.tokens, 0),
          1,
        );
        scorer.rollback(0, 0);
        return scores;
      });
      now = stats.time("targetMs", now);
      const next = stats.profileSync(
        "target",
        undefined,
        kernel,
        () => kernel.sample(scores.probs(0, 0), [random.next()])[0],
      );
      stats.recordBlock(0, 0);
      lastEnd = stats.time("verifyMs", now);
      draftPending = [...run.prompt.slice(1), next];
      draftFeatures = scorer.keptFeatures();
      targetPending = [next];
      known++;
      const kept = output.push([next]);
      throwIfAborted(signal);
      if (kept.length > 0) yield kept;
    }
    while (!output.stopReason) {
      await yieldToEventLoop(); // timers and I/O run between blocks, whatever the model
      throwIfAborted(signal);
      const chosen = planner.plan();
      checkPlan(chosen, "Cannot run a block");
      const room = Math.min(target.maxLength - known, proposer.room(known));
      if (room < 1 && target.length + targetPending.length > target.maxLength) {
        output.stopReason ??= "length";
        break;
      }
      const last = room < 1; // no room for a draft token: one last token from the target alone
      const plan = last || chosen.draftLength > room ? { ...chosen, draftLength: Math.max(0, room) } : chosen;
      const start = performance.now();
      lastEnd ??= start;
      let now = start;
      const proposal = await stats.profile("draft", proposer, kernel, () =>
        stats.count(
          "draftCalls",
          proposer,
          () =>
            proposer.propose(
              draftPending,
              { ...plan, sampling: plan.verifier.draftSampling },
              random,
              draftFeatures,
            ),
          plan.draftLength,
        ));
      now = stats.time("draftMs", now);
      const draftMs = now - start;
      const scores = await stats.profile("target", target, kernel, () =>
        stats.count(
          "targetCalls",
          target,
          () => scorer.score(targetPending, proposal.tokens, proposal.draftLength),
          1,
        ));
      now = stats.time("targetMs", now);
      let targetMs = now - start - draftMs;
      const block = stats.profileSync(
        "target",
        undefined,
        kernel,
        () => plan.verifier.verifyBlock(kernel, proposal, scores, random),
      );
      now = stats.time("verifyMs", now);
      const verifyMs = now - start - draftMs - targetMs;
      const next = block.tokens[block.tokens.length - 1];
      stats.profileSync("target", target, kernel, () => scorer.rollback(block.row, block.accepted));
      const afterTarget = stats.time("targetMs", now);
      targetMs += afterTarget - now;
      draftPending = stats.profileSync(
        "draft",
        proposer,
        kernel,
        () => proposer.rollback(block.row, block.accepted),
      );
      if (featured) {
        if (draftPending.length !== block.accepted) {
          throw new RangeError(
            `Cannot run a block: the ${proposer.name} proposer reads target features, so its rollback must return the ${block.accepted} accepted draft tokens, got ${draftPending.length} tokens`,
          );
        }
        draftFeatures = scorer.keptFeatures();
      }
      draftPending.push(next);
      const end = stats.time("draftMs", afterTarget);
      const blockMs = end - lastEnd;
      lastEnd = end;
      stats.recordBlock(block.reached, block.accepted, plan, proposal, blockMs);
      planner.observe({
        blockMs,
        plan,
        proposal,
        scores,
        result: block,
        kernel,
        draftMs: draftMs + end - afterTarget,
        targetMs,
        verifyMs,
        known,
        pendingTokens: targetPending.length,
        scored: scorer.lastShape,
      });
      targetPending = [next];
      known += block.tokens.length;
      const kept = output.push(block.tokens);
      throwIfAborted(signal);
      if (kept.length > 0) yield kept;
      if (last) output.stopReason ??= "length";
    }
    return { tokens: output.tokens, stats: stats.finish(output.tokens.length, output.stopReason) };
  }
}
