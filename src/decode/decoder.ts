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
import type { Verifier, VerifierName } from "../verify/types.ts";
import { beginEventLoopTurns, endEventLoopTurns, yieldToEventLoop } from "../event_loop.ts";
import { collect, OutputBuffer, resolveGenerate, throwIfAborted } from "./_generation.ts";
import type { CausalModel } from "./model.ts";
import { DraftProposer } from "./proposer.ts";
import { TargetScorer } from "./scorer.ts";
import { StatsRecorder } from "./stats.ts";
import type { Decoder, GenerateOptions, GenerateResult } from "./types.ts";
import { walkBlock } from "./walk.ts";

/** Options of {@linkcode BlockDecoder}. */
export interface BlockDecoderOptions {
  /** The large model whose distribution the output follows. */
  target: CausalModel;
  /** The small model that proposes drafts; same vocabulary as the target. */
  draft: CausalModel;
  /** Kernel for warping, sampling and verification (the WASM kernel or the reference). */
  kernel: Kernel;
  /** The verification rule, or its name: "sd" | "kseq" | "specinfer" | "specinfer-wor". */
  verifier: Verifier | VerifierName;
  /**
   * Drafts per block (an integer ≥ 1, at most the verifier's `maxCandidates`; `sd` needs 1).
   * @default {1}
   */
  k?: number;
  /**
   * Draft length L per block (an integer ≥ 1).
   * @default {4}
   */
  draftLength?: number;
  /**
   * Warp applied to both models' logits; the output is exact for the warped target.
   * @default {{}}
   */
  warp?: WarpOptions;
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
  /** The verifier's name. */
  readonly method: VerifierName;
  /** The verification rule. */
  readonly verifier: Verifier;
  /** Drafts per block. */
  readonly k: number;
  /** Draft length L. */
  readonly draftLength: number;
  readonly #target: CausalModel;
  readonly #draft: CausalModel;
  readonly #kernel: Kernel;
  readonly #warp: WarpOptions;

  /**
   * Builds the driver over a target, a draft, a kernel and a verifier.
   *
   * @throws {RangeError} unknown verifier name, k not an integer in [1, maxCandidates] (sd: k ≠ 1),
   *   draftLength not an integer ≥ 1, draft and target vocabularies of different sizes, bad warp.
   */
  constructor(options: BlockDecoderOptions) {
    const { target, draft, kernel, k = 1, draftLength = 4, warp = {} } = options;
    const verifier = typeof options.verifier === "string" ? getVerifier(options.verifier) : options.verifier;
    if (verifier.name === "sd" && k !== 1) {
      throw new RangeError(
        `Cannot build a block decoder: sd verifies exactly 1 draft, so k must be 1, got ${k}`,
      );
    }
    if (!Number.isInteger(k) || k < 1 || k > verifier.maxCandidates) {
      throw new RangeError(
        `Cannot build a block decoder: k must be an integer in [1, ${verifier.maxCandidates}] for ${verifier.name}, got ${k}`,
      );
    }
    if (!Number.isInteger(draftLength) || draftLength < 1) {
      throw new RangeError(
        `Cannot build a block decoder: draftLength must be an integer >= 1, got ${draftLength}`,
      );
    }
    if (draft.vocabSize !== target.vocabSize) {
      throw new RangeError(
        `Cannot build a block decoder: the draft vocabulary (${draft.vocabSize}) differs from the target's (${target.vocabSize})`,
      );
    }
    resolveWarp(warp);
    this.method = verifier.name;
    this.verifier = verifier;
    this.k = k;
    this.draftLength = draftLength;
    this.#target = target;
    this.#draft = draft;
    this.#kernel = kernel;
    this.#warp = { ...warp };
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
    const draft = this.#draft;
    const kernel = this.#kernel;
    const run = resolveGenerate(
      promptIds,
      options,
      target.vocabSize,
      Math.min(target.maxLength, draft.maxLength),
    );
    const { random, signal } = run;
    throwIfAborted(signal);
    const stats = new StatsRecorder(this.draftLength);
    const output = new OutputBuffer(run.maxNewTokens, run.eos, run.stopWhen);
    const proposer = new DraftProposer({
      model: draft,
      kernel,
      k: this.k,
      sampling: this.verifier.draftSampling,
      warp: this.#warp,
    });
    const scorer = new TargetScorer({ model: target, kernel, warp: this.#warp });
    target.reset();
    draft.reset();
    let targetPending = run.prompt;
    let draftPending = run.prompt;
    let known = run.prompt.length; // prompt + generated tokens so far
    while (!output.stopReason) {
      await yieldToEventLoop(); // timers and I/O run between blocks, whatever the model
      throwIfAborted(signal);
      const draftLength = Math.min(this.draftLength, target.maxLength - known, draft.maxLength - known + 1);
      if (draftLength < 1) {
        // No room for a draft token, but the target can still be fed its pending tokens: one
        // last token straight from the target, as the autoregressive method gives.
        if (target.length + targetPending.length <= target.maxLength) {
          const now = performance.now();
          const logits = await stats.count("targetCalls", target, () => target.append([targetPending], 1), 1);
          stats.time("targetMs", now);
          const token = kernel.sample(kernel.warp(logits, this.#warp), [random.next()])[0];
          stats.recordBlock(0, 0);
          const kept = output.push([token]);
          throwIfAborted(signal);
          if (kept.length > 0) yield kept;
        }
        output.stopReason ??= "length";
        break;
      }
      let now = performance.now();
      const proposal = await stats.count(
        "draftCalls",
        draft,
        () => proposer.propose(draftPending, draftLength, random),
        draftLength,
      );
      now = stats.time("draftMs", now);
      const scores = await stats.count(
        "targetCalls",
        target,
        () => scorer.score(targetPending, proposal.tokens, draftLength),
        1,
      );
      now = stats.time("targetMs", now);
      const block = walkBlock(kernel, this.verifier, proposal, scores, random);
      stats.recordBlock(block.reached, block.accepted);
      now = stats.time("verifyMs", now);
      const next = block.tokens[block.tokens.length - 1];
      scorer.rollback(block.row, block.accepted);
      now = stats.time("targetMs", now);
      draftPending = proposer.rollback(block.row, block.accepted);
      draftPending.push(next);
      stats.time("draftMs", now);
      targetPending = [next];
      known += block.tokens.length;
      const kept = output.push(block.tokens);
      throwIfAborted(signal);
      yield kept;
    }
    return { tokens: output.tokens, stats: stats.finish(output.tokens.length, output.stopReason) };
  }
}
