/**
 * The planner registry: methods that choose each block's plan (verifier, k, L) from the blocks
 * before it, as opposed to a verifier run with a fixed k and L. The decoder's and the generator's
 * method names derive from it beside the verifier registry; a new planner is one file (its
 * {@linkcode BlockPlanner} and a {@linkcode PlannerKind}) plus one line here.
 *
 * @module
 */

import { AutoPlanner } from "./auto.ts";
import type { BlockCostModel } from "./cost.ts";
import type { CausalModel } from "./model.ts";
import type { BlockPlanner } from "./plan.ts";

/** What a planner is built from: the target, the request's bounds and the pair's measured costs. */
export interface PlannerContext {
  /** The target model (e.g. whether it scores trees). */
  readonly target: CausalModel;
  /** Most drafts per block the proposer and the request allow. */
  readonly maxDrafts: number;
  /** Longest draft the request allows. */
  readonly maxDraftLength: number;
  /** The pair's block cost model (measured once per generator and proposer, then shared). */
  cost(): Promise<BlockCostModel>;
}

/** A planning method: its name (a generation method) and how to build its planner. */
export interface PlannerKind {
  /** The method name. */
  readonly name: string;
  /** One line for docs and errors. */
  readonly description: string;
  /** A planner for one generator, request bounds and warp (the caller keeps it across generations). */
  create(context: PlannerContext): Promise<BlockPlanner>;
}

/** `auto`: method, k and L per block from the measured cost model and the acceptance seen so far. */
export const autoPlannerKind: PlannerKind = Object.freeze({
  name: "auto",
  description: "method, k and L chosen per block from a measured cost model and the acceptance seen so far",
  create: async (c: PlannerContext): Promise<BlockPlanner> =>
    new AutoPlanner({
      cost: await c.cost(),
      maxDrafts: c.maxDrafts,
      maxDraftLength: c.maxDraftLength,
      treeScoring: c.target.supportsTree === true,
    }),
});

/** The registry's shape: one entry per shipped planner. */
export interface Planners {
  /** Per-block choice from measured costs and acceptance. */
  readonly auto: PlannerKind;
}

/** Every shipped planner kind, keyed by its method name (one line per planner). */
export const planners: Planners = Object.freeze(
  { auto: autoPlannerKind } satisfies Record<string, PlannerKind>,
);

/** Names of the shipped planners (the registry's keys). */
export type PlannerName = keyof typeof planners;

/** Every planner name, in registry order. */
export const plannerNames: readonly PlannerName[] = Object.freeze(Object.keys(planners) as PlannerName[]);

/**
 * Whether `method` names a planner.
 *
 * @example
 * ```ts
 * import { isPlannerName } from "./planners.ts";
 * console.assert(isPlannerName("auto") && !isPlannerName("kseq"));
 * ```
 */
export function isPlannerName(method: string): method is PlannerName {
  return Object.hasOwn(planners, method);
}
