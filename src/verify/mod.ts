/**
 * The verifiers shipped with spectr, by name.
 *
 * @module
 */

import type { Verifier, VerifierName } from "./types.ts";
import { kseq } from "./kseq.ts";
import { sd } from "./sd.ts";
import { specInfer, specInferWor } from "./specinfer.ts";

export type { DraftSampling, Verifier, VerifierName } from "./types.ts";
export { kseq, sd, specInfer, specInferWor };

/** Every shipped verifier, keyed by name. */
export const verifiers: Readonly<Record<VerifierName, Verifier>> = Object.freeze({
  sd,
  kseq,
  specinfer: specInfer,
  "specinfer-wor": specInferWor,
});

/**
 * Looks a verifier up by name.
 *
 * @throws {RangeError} unknown name.
 * @example
 * ```ts
 * import { getVerifier } from "./mod.ts";
 * console.assert(getVerifier("kseq").draftSampling === "iid");
 * ```
 */
export function getVerifier(name: string): Verifier {
  const v = (verifiers as Record<string, Verifier>)[name];
  if (!v) {
    throw new RangeError(`Unknown verifier "${name}": expected one of ${Object.keys(verifiers).join(", ")}`);
  }
  return v;
}
