/**
 * Model-agnostic block decoding: the {@linkcode CausalModel} interface, the proposer / scorer /
 * verifier-walk split, the {@linkcode BlockDecoder} driver, the autoregressive baseline and toy
 * Markov-chain models for tests.
 *
 * @example
 * ```ts
 * import { createDecoder, MarkovModel, nearMarkovTable, randomMarkovTable } from "./mod.ts";
 * import { referenceKernel } from "../kernel/reference.ts";
 * const table = randomMarkovTable(4, 1, 1);
 * const target = new MarkovModel({ table, vocabSize: 4 });
 * const draft = new MarkovModel({ table: nearMarkovTable(table, 4, 2), vocabSize: 4 });
 * const decoder = createDecoder("kseq", { target, draft, kernel: referenceKernel, k: 3, draftLength: 2 });
 * const { tokens } = await decoder.generate([0], { maxNewTokens: 4, seed: 1 });
 * console.assert(tokens.length === 4);
 * ```
 *
 * @module
 */

export type { CausalModel } from "./model.ts";
export { ContextLimitError } from "./errors.ts";
export { checkAppend, checkFork, checkSelect } from "./model.ts";
export { MarkovModel, nearMarkovTable, randomMarkovTable } from "./markov.ts";
export type { MarkovModelOptions, RandomTableOptions } from "./markov.ts";
export { DraftProposer } from "./proposer.ts";
export type { DraftProposal, DraftProposerOptions, ProposalRequest, Proposer } from "./proposer.ts";
export { findContinuation, type LookupMatch, LookupProposer, type LookupProposerOptions } from "./lookup.ts";
export {
  drafterTimingModel,
  type EagleDrafterModel,
  EagleProposer,
  type EagleProposerOptions,
} from "./eagle_proposer.ts";
export { getProposerKind, type ProposerName, proposerNames, type Proposers, proposers } from "./proposers.ts";
export {
  autoPlannerKind,
  isPlannerName,
  type PlannerContext,
  type PlannerKind,
  type PlannerName,
  plannerNames,
  type Planners,
  planners,
} from "./planners.ts";
export type { ProposerKind, ProposerParts } from "./proposer.ts";
export { AutoPlanner } from "./auto.ts";
export type { AutoCandidate, AutoPlannerOptions } from "./auto.ts";
export type { BlockCostModel } from "./cost.ts";
export { ForwardCost } from "./cost.ts";
export { FixedPlanner } from "./plan.ts";
export type { BlockOutcome, BlockPlan, BlockPlanner } from "./plan.ts";
export { TargetScorer, TargetScores } from "./scorer.ts";
export type { TargetScorerOptions } from "./scorer.ts";
export { BlockDecoder, checkPlan } from "./decoder.ts";
export type { BlockDecoderOptions } from "./decoder.ts";
export { AutoregressiveDecoder } from "./autoregressive.ts";
export type { AutoregressiveDecoderOptions } from "./autoregressive.ts";
export { createDecoder, decodeMethods } from "./create.ts";
export type { CreateDecoderOptions } from "./create.ts";
export { StatsRecorder } from "./stats.ts";
export type { DecodeStats, PlanCount, StopReason } from "./stats.ts";
export type { DecodeMethod, Decoder, GenerateOptions, GenerateResult } from "./types.ts";
