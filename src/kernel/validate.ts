/**
 * Input checks shared by the WASM kernel wrapper and the reference, so both reject bad input with the
 * same typed error: `TypeError` for the wrong kind of value, `RangeError` for a value out of range.
 * The message of every error the WASM kernel also reports by status code comes from
 * {@linkcode ABI_ERRORS} (`abi_errors.ts`), so the two kernels cannot word them differently.
 *
 * @module
 */

import { ABI_ERRORS } from "./abi_errors.ts";
import type { Probs, WarpOptions } from "./types.ts";

/** Warp options with every default filled in. */
export interface ResolvedWarp {
  /** Softmax temperature (0 = greedy). */
  temperature: number;
  /** top-k (0 disables). */
  topK: number;
  /** top-p (1 disables). */
  topP: number;
}

/**
 * Checks warp options and fills in defaults.
 *
 * @throws {RangeError} temperature < 0 or not finite, topK not a non-negative integer, topP outside (0, 1].
 * @example Defaults
 * ```ts
 * import { resolveWarp } from "./validate.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(resolveWarp({}), { temperature: 1, topK: 0, topP: 1 });
 * ```
 */
export function resolveWarp(options: WarpOptions = {}): ResolvedWarp {
  const { temperature = 1, topK = 0, topP = 1 } = options;
  if (typeof temperature !== "number" || !Number.isFinite(temperature) || temperature < 0) {
    throw new RangeError(ABI_ERRORS.Temperature.message(temperature));
  }
  if (!Number.isInteger(topK) || topK < 0 || topK > 0xffffffff) {
    throw new RangeError(ABI_ERRORS.TopK.message(topK));
  }
  if (typeof topP !== "number" || !(topP > 0 && topP <= 1)) {
    throw new RangeError(ABI_ERRORS.TopP.message(topP));
  }
  return { temperature, topK, topP };
}

/**
 * Checks a logit row: a non-empty Float32Array with no NaN or +Infinity and at least one finite
 * entry (-Infinity masks a token).
 *
 * @throws {TypeError} not a Float32Array.
 * @throws {RangeError} empty, NaN, +Infinity, or every logit -Infinity.
 * @example
 * ```ts
 * import { checkLogits } from "./validate.ts";
 * checkLogits(new Float32Array([0, 1, -Infinity]));
 * ```
 */
export function checkLogits(logits: Float32Array, what = "logits"): void {
  if (!(logits instanceof Float32Array)) {
    throw new TypeError(`Cannot warp ${what}: expected a Float32Array, got ${describe(logits)}`);
  }
  if (logits.length === 0) throw new RangeError(ABI_ERRORS.Empty.message("warp", what));
  let finite = 0;
  for (let i = 0; i < logits.length; i++) {
    const x = logits[i];
    if (x !== x) throw new RangeError(ABI_ERRORS.NanLogit.message(what, i));
    if (x === Infinity) throw new RangeError(ABI_ERRORS.PosInfLogit.message(what, i));
    if (x !== -Infinity) finite++;
  }
  if (finite === 0) throw new RangeError(ABI_ERRORS.AllMasked.message(what));
}

/**
 * Checks a probability row: a Float32Array or Float64Array of finite, non-negative entries with a
 * positive sum.
 *
 * @throws {TypeError} not a typed float array.
 * @throws {RangeError} empty, negative, NaN/Infinity, or all zero.
 * @example
 * ```ts
 * import { checkProbs } from "./validate.ts";
 * checkProbs(new Float64Array([0.25, 0.75]), "p");
 * ```
 */
export function checkProbs(probs: Probs, what: string): void {
  if (!(probs instanceof Float32Array || probs instanceof Float64Array)) {
    throw new TypeError(
      `Cannot use ${what}: expected a Float32Array or Float64Array, got ${describe(probs)}`,
    );
  }
  if (probs.length === 0) throw new RangeError(ABI_ERRORS.Empty.message("use", what));
  let sum = 0;
  for (let i = 0; i < probs.length; i++) {
    const x = probs[i];
    if (!(x >= 0) || x === Infinity) throw new RangeError(ABI_ERRORS.BadProb.message(what, i, x));
    sum += x;
  }
  if (!(sum > 0)) throw new RangeError(ABI_ERRORS.ZeroMass.message(what));
}

/**
 * Checks that p and q are valid rows over the same vocabulary.
 *
 * @throws {RangeError} vocab mismatch, or an invalid row.
 * @example
 * ```ts
 * import { checkPair } from "./validate.ts";
 * checkPair(new Float64Array([1, 0]), new Float64Array([0.5, 0.5]));
 * ```
 */
export function checkPair(p: Probs, q: Probs): void {
  checkProbs(p, "target probs p");
  checkProbs(q, "draft probs q");
  checkSameVocab(p, q);
}

/**
 * Checks that the target row and the draft row (probabilities or logits) have the same length.
 *
 * @throws {RangeError} vocab mismatch.
 * @example
 * ```ts
 * import { checkSameVocab } from "./validate.ts";
 * checkSameVocab(new Float32Array(3), new Float32Array(3));
 * ```
 */
export function checkSameVocab(target: ArrayLike<number>, draft: ArrayLike<number>): void {
  if (target.length !== draft.length) {
    throw new RangeError(
      `Cannot verify drafts: vocab mismatch, target p has ${target.length} entries, draft q has ${draft.length}`,
    );
  }
}

/**
 * Checks a candidate count k.
 *
 * @throws {RangeError} k not an integer >= 1.
 * @example
 * ```ts
 * import { checkK } from "./validate.ts";
 * checkK(4);
 * ```
 */
export function checkK(k: number): void {
  if (!Number.isInteger(k) || k < 1 || k > 1024) {
    throw new RangeError(ABI_ERRORS.BadK.message(k));
  }
}

/**
 * Checks draft candidates (token ids in [0, vocab)) and their uniforms (`k + 1` numbers in [0, 1)).
 *
 * @throws {RangeError} no candidates, an id out of range, or wrong uniform count/range.
 * @example
 * ```ts
 * import { checkCandidates } from "./validate.ts";
 * checkCandidates([1, 0], [0.5, 0.1, 0.9], 3);
 * ```
 */
export function checkCandidates(
  candidates: ArrayLike<number>,
  uniforms: ArrayLike<number>,
  vocab: number,
): void {
  const k = candidates.length;
  if (k < 1) throw new RangeError("Cannot verify drafts: there are no candidates (k < 1)");
  checkK(k);
  for (let i = 0; i < k; i++) {
    const x = candidates[i];
    if (!Number.isInteger(x) || x < 0 || x >= vocab) {
      throw new RangeError(ABI_ERRORS.Candidate.message(i, x, vocab));
    }
  }
  checkUniforms(uniforms, k + 1, "verify drafts");
}

/**
 * Checks that `uniforms` holds exactly `count` numbers in [0, 1).
 *
 * @throws {RangeError} wrong count or a value outside [0, 1).
 * @example
 * ```ts
 * import { checkUniforms } from "./validate.ts";
 * checkUniforms([0, 0.5], 2, "sample");
 * ```
 */
export function checkUniforms(uniforms: ArrayLike<number>, count: number, action: string): void {
  if (uniforms.length !== count) {
    throw new RangeError(`Cannot ${action}: expected ${count} uniforms, got ${uniforms.length}`);
  }
  for (let i = 0; i < count; i++) {
    const u = uniforms[i];
    if (!(u >= 0 && u < 1)) throw new RangeError(ABI_ERRORS.Uniform.message(action, i, u));
  }
}

function describe(x: unknown): string {
  if (x === null) return "null";
  if (typeof x === "object") return (x as object).constructor?.name ?? "object";
  return typeof x;
}
