/**
 * What every decoder (speculative or autoregressive) takes and returns.
 *
 * @module
 */

import type { Random } from "../random.ts";
import type { VerifierName } from "../verify/mod.ts";
import type { DecodeStats } from "./stats.ts";
import type { PlannerName } from "./planners.ts";

/**
 * Decoding methods, by name: the autoregressive baseline, `auto` (verifier, k and L chosen per block
 * from a cost model and online acceptance), or a speculative verifier from the registry.
 */
export type DecodeMethod = "autoregressive" | PlannerName | VerifierName;

/** Options of one generation. */
export interface GenerateOptions {
  /** Most tokens to generate (an integer ≥ 0); the last block is truncated to it. */
  maxNewTokens: number;
  /**
   * Seed of the uniforms, an integer in [0, 2^32 − 1] (ignored when `random` is given). The same
   * seed, models, options and kernel math reproduce a run exactly.
   * @default {a seed from Math.random()}
   */
  seed?: number;
  /** Source of the uniforms, used as is (overrides `seed`). */
  random?: Random;
  /**
   * Stop after this token (or any of these tokens), which is included in the output.
   * @default {undefined}
   */
  eosTokenId?: number | readonly number[];
  /**
   * Called with every token kept so far after each block (or step); returning true stops the
   * generation with stop reason "stop" (used for stop strings).
   * @default {undefined}
   */
  stopWhen?: (tokens: readonly number[]) => boolean;
  /** Aborts the generation: it throws the signal's reason (a DOMException "AbortError" by default). */
  signal?: AbortSignal;
}

/** The output of one generation. */
export interface GenerateResult {
  /** Generated token ids (the prompt excluded). */
  tokens: number[];
  /** Counters and timings. */
  stats: DecodeStats;
}

/**
 * A decoder: generates from a prompt, all at once or block by block.
 *
 * @example
 * ```ts
 * import type { Decoder } from "./types.ts";
 * import { createDecoder } from "./create.ts";
 * import { MarkovModel, randomMarkovTable } from "./markov.ts";
 * import { referenceKernel } from "../kernel/reference.ts";
 * const target = new MarkovModel({ table: randomMarkovTable(3, 1, 1), vocabSize: 3 });
 * const decoder: Decoder = createDecoder("autoregressive", { target, kernel: referenceKernel });
 * const { tokens } = await decoder.generate([0], { maxNewTokens: 2, seed: 1 });
 * console.assert(tokens.length === 2);
 * ```
 */
export interface Decoder {
  /** The method's name. */
  readonly method: string;
  /**
   * Generates up to `maxNewTokens` tokens after the prompt.
   *
   * @param promptIds Prompt token ids (≥ 1 token).
   * @param options Stop conditions and randomness.
   */
  generate(promptIds: ArrayLike<number>, options: GenerateOptions): Promise<GenerateResult>;
  /**
   * Like `generate`, yielding the tokens of each block (or step) as they are decided; the
   * generator's return value is the full result.
   */
  stream(promptIds: ArrayLike<number>, options: GenerateOptions): AsyncGenerator<number[], GenerateResult>;
}
