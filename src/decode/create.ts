/**
 * A factory that builds a decoder from a method name.
 *
 * @module
 */

import type { Kernel, WarpOptions } from "../kernel/types.ts";
import { AutoregressiveDecoder } from "./autoregressive.ts";
import { BlockDecoder } from "./decoder.ts";
import type { CausalModel } from "./model.ts";
import type { DecodeMethod, Decoder } from "./types.ts";

/** The methods {@linkcode createDecoder} accepts. */
export const decodeMethods: readonly DecodeMethod[] = Object.freeze([
  "autoregressive",
  "sd",
  "kseq",
  "specinfer",
  "specinfer-wor",
]);

/** Options of {@linkcode createDecoder}. */
export interface CreateDecoderOptions {
  /** The target model. */
  target: CausalModel;
  /** The draft model; required by every method but "autoregressive" (which ignores it). */
  draft?: CausalModel;
  /** Kernel for warping, sampling and verification. */
  kernel: Kernel;
  /**
   * Drafts per block (ignored by "autoregressive"; "sd" needs 1).
   * @default {1}
   */
  k?: number;
  /**
   * Draft length L (ignored by "autoregressive").
   * @default {4}
   */
  draftLength?: number;
  /**
   * Warp applied to both models.
   * @default {{}}
   */
  warp?: WarpOptions;
}

/**
 * Builds the decoder for a method: "autoregressive" (target only) or a speculative one ("sd",
 * "kseq", "specinfer", "specinfer-wor") driven by a {@linkcode BlockDecoder}.
 *
 * @param method The method's name.
 * @param options Models, kernel, k, draftLength, warp.
 * @returns A decoder.
 * @throws {RangeError} unknown method, a missing draft model, or invalid options.
 * @example
 * ```ts
 * import { createDecoder } from "./create.ts";
 * import { MarkovModel, randomMarkovTable } from "./markov.ts";
 * import { referenceKernel } from "../kernel/reference.ts";
 * import assert from "node:assert/strict";
 * const table = randomMarkovTable(3, 1, 4);
 * const target = new MarkovModel({ table, vocabSize: 3 });
 * const draft = new MarkovModel({ table, vocabSize: 3 });
 * const decoder = createDecoder("specinfer", { target, draft, kernel: referenceKernel, k: 2, draftLength: 2 });
 * assert.equal(decoder.method, "specinfer");
 * ```
 */
export function createDecoder(method: DecodeMethod, options: CreateDecoderOptions): Decoder {
  const { target, draft, kernel, k, draftLength, warp } = options;
  if (method === "autoregressive") return new AutoregressiveDecoder({ target, kernel, warp });
  if (!decodeMethods.includes(method)) {
    throw new RangeError(
      `Cannot create a decoder: unknown method "${method}", expected one of ${decodeMethods.join(", ")}`,
    );
  }
  if (!draft) {
    throw new RangeError(`Cannot create a decoder: method "${method}" needs a draft model, got ${draft}`);
  }
  return new BlockDecoder({ target, draft, kernel, verifier: method, k, draftLength, warp });
}
