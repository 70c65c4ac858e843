/**
 * A factory that builds a decoder from a method name.
 *
 * @module
 */

import type { Kernel, WarpOptions } from "../kernel/types.ts";
import { verifierNames } from "../verify/mod.ts";
import { AutoregressiveDecoder } from "./autoregressive.ts";
import { BlockDecoder } from "./decoder.ts";
import type { CausalModel } from "./model.ts";
import type { BlockPlanner } from "./plan.ts";
import { isPlannerName, plannerNames } from "./planners.ts";
import type { Proposer } from "./proposer.ts";
import type { DecodeMethod, Decoder } from "./types.ts";

/** The methods {@linkcode createDecoder} accepts: `autoregressive`, `auto`, then every registered verifier. */
export const decodeMethods: readonly DecodeMethod[] = Object.freeze([
  "autoregressive",
  ...plannerNames,
  ...verifierNames,
]);

/** Options of {@linkcode createDecoder}. */
export interface CreateDecoderOptions {
  /** The target model. */
  target: CausalModel;
  /** The draft model; every method but "autoregressive" needs it or a `proposer`. */
  draft?: CausalModel;
  /** A proposer instead of the draft model (e.g. a `LookupProposer`). */
  proposer?: Proposer;
  /** Kernel for warping, sampling and verification. */
  kernel: Kernel;
  /**
   * Drafts per block (ignored by "autoregressive"; at most the verifier's `maxCandidates`).
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
  /** The planner for a planning method such as "auto" (required by it: see src/decode/planners.ts). */
  planner?: BlockPlanner;
}

/**
 * Builds the decoder for a method: "autoregressive" (target only), "auto" (a planner choosing per
 * block) or a registered verifier ("sd", "kseq", "specinfer", "specinfer-wor", "block", …) driven by
 * a {@linkcode BlockDecoder}.
 *
 * @param method The method's name.
 * @param options Models (or a proposer), kernel, k, draftLength, warp.
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
  const { target, draft, proposer, kernel, k, draftLength, warp, planner } = options;
  if (method === "autoregressive") return new AutoregressiveDecoder({ target, kernel, warp });
  if (!decodeMethods.includes(method)) {
    throw new RangeError(
      `Cannot create a decoder: unknown method "${method}", expected one of ${decodeMethods.join(", ")}`,
    );
  }
  if (!draft && !proposer) {
    throw new RangeError(`Cannot create a decoder: method "${method}" needs a draft model, got ${draft}`);
  }
  if (isPlannerName(method)) {
    if (!planner) throw new RangeError(`Cannot create a decoder: method "${method}" needs a planner`);
    return new BlockDecoder({ target, draft, proposer, kernel, planner, warp });
  }
  return new BlockDecoder({ target, draft, proposer, kernel, verifier: method, k, draftLength, warp });
}
