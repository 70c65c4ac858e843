/**
 * Block plans: what a block runs (verifier, k, L), chosen before the block from the past only. A
 * {@linkcode BlockPlanner} sees each block's outcome and timings afterwards, so it may adapt from
 * block to block (`auto`); it never sees the current block before its plan is fixed, which is what
 * keeps every token exact.
 *
 * @module
 */

import type { Kernel } from "../kernel/types.ts";
import type { BlockResult, BlockScores, Verifier } from "../verify/types.ts";
import type { DraftProposal } from "./proposer.ts";

/** What one block runs. */
export interface BlockPlan {
  /** The verification rule. */
  readonly verifier: Verifier;
  /** Drafts (1..verifier.maxCandidates). */
  readonly k: number;
  /** Draft length L (≥ 0; 0 is one target-only token: autoregressive). */
  readonly draftLength: number;
  /** What a planner predicted for it (reported in the stats). */
  readonly predicted?: { readonly tokens: number; readonly ms: number };
}

/** What a planner learns after a block. */
export interface BlockOutcome {
  /** The plan it ran (L cut to the context room). */
  readonly plan: BlockPlan;
  /** The drafts (their k and L may be smaller than planned). */
  readonly proposal: DraftProposal;
  /** The target rows the verifier read. */
  readonly scores: BlockScores;
  /** The verifier's decision. */
  readonly result: BlockResult;
  /** Kernel the block ran with. */
  readonly kernel: Kernel;
  /** Time proposing (and rolling the proposer back), ms. */
  readonly draftMs: number;
  /** Time in the target (the scoring forward and rollback), ms. */
  readonly targetMs: number;
  /** Time verifying, ms. */
  readonly verifyMs: number;
  /**
   * Wall time from the end of the previous block (the start of this one for the first) to the end
   * of this one, ms: the stages plus everything else a block costs (yielding to the event loop, the
   * caller's work between blocks, bookkeeping).
   */
  readonly blockMs: number;
  /** Prompt + generated tokens before the block. */
  readonly known: number;
  /** Tokens the target was fed before the drafts (the prompt in the first block, then 1). */
  readonly pendingTokens: number;
  /** Shape of the scoring forward: k rows × (pending + L) tokens, or 1 × tree nodes. */
  readonly scored: { readonly rows: number; readonly tokens: number };
}

/** Chooses each block's plan from the past blocks. */
export interface BlockPlanner {
  /** Name reported as the decoder's method (a verifier name, or `auto`). */
  readonly name: string;
  /** A new generation starts (the planner may keep what it learned across generations). */
  start(): void;
  /** The plan of the next block; must not depend on anything about that block. */
  plan(): BlockPlan;
  /** The outcome of the block just run. */
  observe(outcome: BlockOutcome): void;
}

/**
 * The same plan every block.
 *
 * @example
 * ```ts
 * import { FixedPlanner } from "./plan.ts";
 * import { kseq } from "../verify/kseq.ts";
 * const planner = new FixedPlanner({ verifier: kseq, k: 2, draftLength: 3 });
 * console.assert(planner.plan().k === 2 && planner.name === "kseq");
 * ```
 */
export class FixedPlanner implements BlockPlanner {
  /** The verifier's name. */
  readonly name: string;
  readonly #plan: BlockPlan;

  /** Wraps one plan. */
  constructor(plan: BlockPlan) {
    this.#plan = Object.freeze({ ...plan });
    this.name = plan.verifier.name;
  }

  /** Nothing to reset. */
  start(): void {}

  /** The fixed plan. */
  plan(): BlockPlan {
    return this.#plan;
  }

  /** Ignored. */
  observe(_outcome: BlockOutcome): void {}
}
