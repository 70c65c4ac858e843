/**
 * The verifier registry: the one source of every speculative method name. `VerifierName`, the
 * decoder's and the generator's method names, the HTTP handler's accepted values and the docs all
 * derive from {@linkcode verifiers}; a new verifier is one file plus one line here.
 *
 * @module
 */

import type { LevelVerifier, Verifier } from "./types.ts";
import { blockVerifier } from "./block.ts";
import { kseq } from "./kseq.ts";
import { kseqBlock } from "./kseq_block.ts";
import { sd } from "./sd.ts";
import { specInfer, specInferWor } from "./specinfer.ts";

export type {
  BlockProposal,
  BlockResult,
  BlockScores,
  DraftSampling,
  LevelRule,
  LevelVerifier,
  Verifier,
} from "./types.ts";
export { levelVerifier, walkBlock } from "./walk.ts";
export type { LevelVerifierDefinition } from "./walk.ts";
export { blockVerifier, kseq, kseqBlock, sd, specInfer, specInferWor };

/** The registry's shape: one entry per shipped verifier. */
export interface Verifiers {
  /** Speculative sampling (one draft). */
  readonly sd: LevelVerifier;
  /** SpecTr's K-SEQ. */
  readonly kseq: LevelVerifier;
  /** SpecInfer's multi-round rejection, drafts drawn with replacement. */
  readonly specinfer: LevelVerifier;
  /** SpecInfer with drafts drawn without replacement. */
  readonly "specinfer-wor": LevelVerifier;
  /** Block verification (one draft). */
  readonly block: Verifier;
  /** K-SEQ with block verification. */
  readonly "kseq-block": Verifier;
}

/** Every shipped verifier, keyed by its name (one line per verifier). */
export const verifiers: Verifiers = Object.freeze(
  {
    sd,
    kseq,
    specinfer: specInfer,
    "specinfer-wor": specInferWor,
    block: blockVerifier,
    "kseq-block": kseqBlock,
  } satisfies Record<string, Verifier>,
);

/** Names of the shipped verifiers (the registry's keys). */
export type VerifierName = keyof typeof verifiers;

/** Other names a verifier is known by in the generation API: SpecTr's K-SEQ is `spectr` there. */
export const verifierAliases: Readonly<{ spectr: "kseq" }> = Object.freeze(
  { spectr: "kseq" } as const satisfies Record<string, VerifierName>,
);

/** An alias of a verifier name. */
export type VerifierAlias = keyof typeof verifierAliases;

/** Every verifier name, in registry order. */
export const verifierNames: readonly VerifierName[] = Object.freeze(Object.keys(verifiers) as VerifierName[]);

/**
 * Looks a verifier up by name or alias.
 *
 * @throws {RangeError} unknown name.
 * @example
 * ```ts
 * import { getVerifier } from "./mod.ts";
 * console.assert(getVerifier("kseq").draftSampling === "iid");
 * console.assert(getVerifier("spectr").name === "kseq");
 * ```
 */
export function getVerifier(name: string): Verifier {
  const key = Object.hasOwn(verifierAliases, name) ? verifierAliases[name as VerifierAlias] : name;
  const v = Object.hasOwn(verifiers, key) ? verifiers[key as VerifierName] : undefined;
  if (!v) {
    throw new RangeError(
      `Unknown verifier "${name}": expected one of ${
        [...verifierNames, ...Object.keys(verifierAliases)].join(", ")
      }`,
    );
  }
  return v;
}
