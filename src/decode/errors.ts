/**
 * Errors of the decoding layer that callers may want to tell apart from other bad input.
 *
 * @module
 */

/**
 * A prompt longer than the models' context limit. A `RangeError`, so code that catches bad
 * arguments still catches it; the HTTP handler maps it by type to a 400 on the prompt field.
 *
 * @example
 * ```ts
 * import { ContextLimitError } from "./errors.ts";
 * import { resolveGenerate } from "./_generation.ts";
 * import assert from "node:assert/strict";
 * assert.throws(() => resolveGenerate([1, 2, 3], { maxNewTokens: 1 }, 4, 2), ContextLimitError);
 * ```
 */
export class ContextLimitError extends RangeError {
  /** Tokens in the prompt. */
  readonly promptTokens: number;
  /** The context limit, in tokens. */
  readonly maxLength: number;

  /** Builds the error for a prompt of `promptTokens` against a limit of `maxLength`. */
  constructor(promptTokens: number, maxLength: number) {
    super(
      `Cannot generate: the prompt of ${promptTokens} tokens exceeds the context limit of ${maxLength} tokens`,
    );
    this.name = "ContextLimitError";
    this.promptTokens = promptTokens;
    this.maxLength = maxLength;
  }
}
