/**
 * Plumbing shared by the decoders: checking generation options, stopping at maxNewTokens / EOS,
 * and collecting a stream into a result. Private to `src/decode`.
 *
 * @module
 */

import { MAX_SEED, Random } from "../random.ts";
import { ContextLimitError } from "./errors.ts";
import type { StopReason } from "./stats.ts";
import type { GenerateOptions } from "./types.ts";

/** Whether `x` is an AbortSignal (of this realm, or one that quacks like it). */
export function isAbortSignal(x: unknown): x is AbortSignal {
  if (typeof AbortSignal === "function" && x instanceof AbortSignal) return true;
  const s = x as AbortSignal | null;
  return typeof s === "object" && s !== null && typeof s.aborted === "boolean" &&
    typeof s.addEventListener === "function";
}

function describe(x: unknown): string {
  if (x === null) return "null";
  if (typeof x !== "object") return typeof x;
  return (x as object).constructor?.name ?? "an object";
}

/** Generation options, checked, with defaults filled in. */
export interface ResolvedGenerate {
  prompt: number[];
  maxNewTokens: number;
  random: Random;
  eos: ReadonlySet<number>;
  signal: AbortSignal | undefined;
  stopWhen: ((tokens: readonly number[]) => boolean) | undefined;
}

/**
 * Checks the prompt and the options.
 *
 * @throws {TypeError} options not an object, a signal that is not an AbortSignal, stopWhen not a
 *   function.
 * @throws {RangeError} empty prompt, prompt ids outside the vocabulary, maxNewTokens not an
 *   integer ≥ 0, a seed that is not an integer in [0, 2^32 − 1].
 * @throws {ContextLimitError} a prompt longer than the context limit (a RangeError).
 * @example
 * ```ts
 * import { resolveGenerate } from "./_generation.ts";
 * import assert from "node:assert/strict";
 * const run = resolveGenerate([1, 2], { maxNewTokens: 3, seed: 1, eosTokenId: 2 }, 4, 10);
 * assert.deepEqual([...run.eos], [2]);
 * ```
 */
export function resolveGenerate(
  promptIds: ArrayLike<number>,
  options: GenerateOptions,
  vocabSize: number,
  maxLength: number,
): ResolvedGenerate {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(
      `Cannot generate: options must be an object, got ${options === null ? "null" : typeof options}`,
    );
  }
  const { maxNewTokens, seed, random, eosTokenId, signal, stopWhen } = options;
  if (seed !== undefined && (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED)) {
    throw new RangeError(`Cannot generate: seed must be an integer in [0, 2^32 - 1], got ${seed}`);
  }
  if (signal !== undefined && !isAbortSignal(signal)) {
    throw new TypeError(`Cannot generate: signal must be an AbortSignal, got ${describe(signal)}`);
  }
  const prompt = Array.from(promptIds ?? []);
  if (prompt.length === 0) {
    throw new RangeError("Cannot generate: the prompt must hold at least 1 token, got 0");
  }
  for (let i = 0; i < prompt.length; i++) {
    const x = prompt[i];
    if (!Number.isInteger(x) || x < 0 || x >= vocabSize) {
      throw new RangeError(
        `Cannot generate: prompt token ${i} is ${x}, outside the vocabulary [0, ${vocabSize})`,
      );
    }
  }
  if (prompt.length > maxLength) {
    throw new ContextLimitError(prompt.length, maxLength);
  }
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) {
    throw new RangeError(`Cannot generate: maxNewTokens must be an integer >= 0, got ${maxNewTokens}`);
  }
  const eosList = eosTokenId === undefined
    ? []
    : typeof eosTokenId === "number"
    ? [eosTokenId]
    : [...eosTokenId];
  for (const id of eosList) {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new RangeError(`Cannot generate: eosTokenId ${id} is outside the vocabulary [0, ${vocabSize})`);
    }
  }
  if (stopWhen !== undefined && typeof stopWhen !== "function") {
    throw new TypeError(`Cannot generate: stopWhen must be a function, got ${typeof stopWhen}`);
  }
  return {
    stopWhen,
    prompt,
    maxNewTokens,
    random: random ?? new Random(seed ?? Math.floor(Math.random() * 2 ** 32)),
    eos: new Set(eosList),
    signal,
  };
}

/**
 * Collects generated tokens and applies the stop rules: truncate at maxNewTokens (the kept prefix
 * of a block is still an exact sample), stop after an EOS token (included).
 *
 * @example
 * ```ts
 * import { OutputBuffer } from "./_generation.ts";
 * import assert from "node:assert/strict";
 * const out = new OutputBuffer(3, new Set([9]));
 * assert.deepEqual(out.push([1, 9, 2]), [1, 9]);
 * assert.equal(out.stopReason, "eos");
 * ```
 */
export class OutputBuffer {
  /** Every token kept so far. */
  readonly tokens: number[] = [];
  /** Set once a stop rule fired. */
  stopReason: StopReason | undefined;
  readonly #max: number;
  readonly #eos: ReadonlySet<number>;
  readonly #stopWhen: ((tokens: readonly number[]) => boolean) | undefined;

  /** Starts empty; `stopWhen` is asked after each push that kept a token. */
  constructor(
    maxNewTokens: number,
    eos: ReadonlySet<number>,
    stopWhen?: (tokens: readonly number[]) => boolean,
  ) {
    this.#max = maxNewTokens;
    this.#eos = eos;
    this.#stopWhen = stopWhen;
    if (maxNewTokens === 0) this.stopReason = "maxNewTokens";
  }

  /** Adds a block's tokens; returns those kept (a prefix). */
  push(block: readonly number[]): number[] {
    const kept: number[] = [];
    for (const x of block) {
      if (this.stopReason) break;
      kept.push(x);
      this.tokens.push(x);
      if (this.#eos.has(x)) this.stopReason = "eos";
      else if (this.tokens.length >= this.#max) this.stopReason = "maxNewTokens";
    }
    if (kept.length > 0 && this.#stopWhen?.(this.tokens)) this.stopReason ??= "stop";
    return kept;
  }
}

/**
 * Throws the signal's reason when it is aborted (a DOMException "AbortError" when none was given).
 *
 * @example
 * ```ts
 * import { throwIfAborted } from "./_generation.ts";
 * import assert from "node:assert/strict";
 * const controller = new AbortController();
 * controller.abort();
 * assert.throws(() => throwIfAborted(controller.signal), { name: "AbortError" });
 * ```
 */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (!signal?.aborted) return;
  throw signal.reason ?? new DOMException("The generation was aborted", "AbortError");
}

/**
 * Runs a stream to its end and returns its result.
 *
 * @example
 * ```ts
 * import { collect } from "./_generation.ts";
 * import assert from "node:assert/strict";
 * async function* gen() {
 *   yield [1];
 *   return 7;
 * }
 * assert.equal(await collect(gen()), 7);
 * ```
 */
export async function collect<T>(stream: AsyncGenerator<number[], T>): Promise<T> {
  for (;;) {
    const step = await stream.next();
    if (step.done) return step.value;
  }
}
