/**
 * The autoregressive baseline: the target alone, one token per target call, with the same warp,
 * result and stats shape as the block decoder.
 *
 * @module
 */

import { resolveWarp } from "../kernel/validate.ts";
import type { Kernel, WarpOptions } from "../kernel/types.ts";
import { beginEventLoopTurns, endEventLoopTurns, yieldToEventLoop } from "../event_loop.ts";
import { collect, OutputBuffer, resolveGenerate, throwIfAborted } from "./_generation.ts";
import type { CausalModel } from "./model.ts";
import { StatsRecorder } from "./stats.ts";
import type { Decoder, GenerateOptions, GenerateResult } from "./types.ts";

/** Options of {@linkcode AutoregressiveDecoder}. */
export interface AutoregressiveDecoderOptions {
  /** The model to sample from. */
  target: CausalModel;
  /** Kernel for warping and sampling. */
  kernel: Kernel;
  /**
   * Warp applied to the logits.
   * @default {{}}
   */
  warp?: WarpOptions;
}

/**
 * Samples one token per target call: append the pending token(s), warp the last logits, draw with
 * one uniform. Each step counts as one block in the stats (`draftCalls` 0, no depths).
 *
 * Context limit: a step feeds one token; it runs while prompt + generated ≤ target.maxLength
 * (the last output token is predicted, not fed), else the generation stops with
 * `stopReason: "length"`.
 *
 * @example
 * ```ts
 * import { AutoregressiveDecoder } from "./autoregressive.ts";
 * import { MarkovModel, randomMarkovTable } from "./markov.ts";
 * import { referenceKernel } from "../kernel/reference.ts";
 * import assert from "node:assert/strict";
 * const target = new MarkovModel({ table: randomMarkovTable(4, 1, 3), vocabSize: 4 });
 * const decoder = new AutoregressiveDecoder({ target, kernel: referenceKernel });
 * const { tokens, stats } = await decoder.generate([0], { maxNewTokens: 5, seed: 1 });
 * assert.equal(tokens.length, 5);
 * assert.equal(stats.targetCalls, 5);
 * ```
 */
export class AutoregressiveDecoder implements Decoder {
  /** Always "autoregressive". */
  readonly method = "autoregressive" as const;
  readonly #target: CausalModel;
  readonly #kernel: Kernel;
  readonly #warp: WarpOptions;

  /**
   * Builds the baseline over the target model.
   *
   * @throws {RangeError} bad warp options.
   */
  constructor(options: AutoregressiveDecoderOptions) {
    const { target, kernel, warp = {} } = options;
    resolveWarp(warp);
    this.#target = target;
    this.#kernel = kernel;
    this.#warp = { ...warp };
  }

  /**
   * Generates up to `maxNewTokens` tokens after the prompt.
   *
   * @throws {RangeError} bad prompt or options.
   * @throws The signal's reason when aborted.
   */
  generate(promptIds: ArrayLike<number>, options: GenerateOptions): Promise<GenerateResult> {
    return collect(this.stream(promptIds, options));
  }

  /**
   * Generates token by token, yielding `[token]` per step; returns the full result.
   *
   * @throws {RangeError} bad prompt or options.
   * @throws The signal's reason when aborted (checked before each step and before each yield).
   */
  async *stream(
    promptIds: ArrayLike<number>,
    options: GenerateOptions,
  ): AsyncGenerator<number[], GenerateResult> {
    beginEventLoopTurns();
    try {
      return yield* this.#steps(promptIds, options);
    } finally {
      endEventLoopTurns();
    }
  }

  async *#steps(
    promptIds: ArrayLike<number>,
    options: GenerateOptions,
  ): AsyncGenerator<number[], GenerateResult> {
    const target = this.#target;
    const run = resolveGenerate(promptIds, options, target.vocabSize, target.maxLength);
    throwIfAborted(run.signal);
    const stats = new StatsRecorder(0);
    const output = new OutputBuffer(run.maxNewTokens, run.eos, run.stopWhen);
    target.reset();
    let pending = run.prompt;
    const u = [0];
    while (!output.stopReason) {
      await yieldToEventLoop(); // timers and I/O run between blocks, whatever the model
      throwIfAborted(run.signal);
      if (target.length + pending.length > target.maxLength) {
        output.stopReason = "length";
        break;
      }
      let now = performance.now();
      const logits = await stats.profile(
        "target",
        target,
        this.#kernel,
        () => stats.count("targetCalls", target, () => target.append([pending], 1), 1),
      );
      now = stats.time("targetMs", now);
      u[0] = run.random.next();
      const token = stats.profileSync(
        "target",
        undefined,
        this.#kernel,
        () => this.#kernel.sample(this.#kernel.warp(logits, this.#warp), u)[0],
      );
      stats.recordBlock(0, 0);
      stats.time("verifyMs", now);
      pending = [token];
      const kept = output.push(pending);
      throwIfAborted(run.signal);
      yield kept;
    }
    return { tokens: output.tokens, stats: stats.finish(output.tokens.length, output.stopReason) };
  }
}
