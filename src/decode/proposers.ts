/**
 * The proposer registry: the one source of proposer names. The generator's `proposer` option, its
 * validation and docs derive from {@linkcode proposers}; a new proposer is one file (its class and
 * its {@linkcode ProposerKind}) plus one line here.
 *
 * @module
 */

import { draftProposerKind, type ProposerKind } from "./proposer.ts";
import { lookupProposerKind } from "./lookup.ts";
import { eagleProposerKind } from "./eagle_proposer.ts";

/** The registry's shape: one entry per shipped proposer. */
export interface Proposers {
  /** A draft model's k sampled sequences. */
  readonly draft: ProposerKind;
  /** Prompt n-gram lookup, no model. */
  readonly lookup: ProposerKind;
  /** The feature drafter (EAGLE-style), reading the target's hidden states. */
  readonly eagle: ProposerKind;
}

/** Every shipped proposer kind, keyed by its name (one line per proposer). */
export const proposers: Proposers = Object.freeze(
  {
    draft: draftProposerKind,
    lookup: lookupProposerKind,
    eagle: eagleProposerKind,
  } satisfies Record<string, ProposerKind>,
);

/** Names of the shipped proposers (the registry's keys). */
export type ProposerName = keyof typeof proposers;

/** Every proposer name, in registry order. */
export const proposerNames: readonly ProposerName[] = Object.freeze(Object.keys(proposers) as ProposerName[]);

/**
 * Looks a proposer kind up by name.
 *
 * @throws {RangeError} unknown name.
 * @example
 * ```ts
 * import { getProposerKind } from "./proposers.ts";
 * console.assert(getProposerKind("lookup").maxDrafts === 1);
 * ```
 */
export function getProposerKind(name: string): ProposerKind {
  if (!Object.hasOwn(proposers, name)) {
    throw new RangeError(
      `Unknown proposer ${JSON.stringify(name)}: expected one of ${proposerNames.join(", ")}`,
    );
  }
  return proposers[name as ProposerName];
}
