/**
 * The model-agnostic building blocks of spectr (`./decode`): the block decoder that the tests
 * prove exact, the {@linkcode CausalModel} interface to plug in your own models, the verifiers
 * (SpecTr's K-SEQ, speculative sampling, SpecInfer with and without replacement), the WASM and
 * reference kernels, seeded uniforms and toy Markov-chain models. For text generation over ONNX
 * folders use the package root (`mod.ts`).
 *
 * @example Speculative decoding on toy Markov chains
 * ```ts
 * import { createDecoder, loadKernel, MarkovModel, nearMarkovTable, randomMarkovTable } from "./decode.ts";
 *
 * const kernel = await loadKernel();
 * const table = randomMarkovTable(16, 1, 1);
 * const target = new MarkovModel({ table, vocabSize: 16 });
 * const draft = new MarkovModel({ table: nearMarkovTable(table, 16, 2), vocabSize: 16 });
 * const decoder = createDecoder("kseq", { target, draft, kernel, k: 4, draftLength: 3, warp: { temperature: 1 } });
 * const { tokens, stats } = await decoder.generate([0], { maxNewTokens: 32, seed: 7 });
 * console.assert(tokens.length === 32 && stats.blockEfficiency >= 1);
 * ```
 *
 * @module
 */

export {
  AutoregressiveDecoder,
  BlockDecoder,
  ContextLimitError,
  createDecoder,
  decodeMethods,
  DraftProposer,
  FixedPlanner,
  MarkovModel,
  nearMarkovTable,
  randomMarkovTable,
} from "./src/decode/mod.ts";
export type {
  AutoregressiveDecoderOptions,
  BlockDecoderOptions,
  BlockOutcome,
  BlockPlan,
  BlockPlanner,
  CausalModel,
  CreateDecoderOptions,
  DecodeMethod,
  Decoder,
  DecodeStats,
  DraftProposal,
  DraftProposerOptions,
  GenerateOptions,
  GenerateResult,
  MarkovModelOptions,
  PlanCount,
  ProposalRequest,
  Proposer,
  RandomTableOptions,
  StopReason,
} from "./src/decode/mod.ts";
export { LookupProposer, type LookupProposerOptions } from "./src/decode/lookup.ts";
export {
  type AutoCandidate,
  AutoPlanner,
  autoPlannerKind,
  type AutoPlannerOptions,
  type BlockCostModel,
  type EagleDrafterModel,
  EagleProposer,
  type EagleProposerOptions,
  ForwardCost,
  getProposerKind,
  isPlannerName,
  type PlannerContext,
  type PlannerKind,
  type PlannerName,
  plannerNames,
  type Planners,
  planners,
  type ProposerKind,
  type ProposerName,
  proposerNames,
  type ProposerParts,
  type Proposers,
  proposers,
} from "./src/decode/mod.ts";

export {
  blockVerifier,
  getVerifier,
  kseq,
  levelVerifier,
  sd,
  specInfer,
  specInferWor,
  verifierAliases,
  verifierNames,
  verifiers,
  walkBlock,
} from "./src/verify/mod.ts";
export type {
  BlockProposal,
  BlockResult,
  BlockScores,
  DraftSampling,
  LevelRule,
  LevelVerifier,
  LevelVerifierDefinition,
  Verifier,
  VerifierAlias,
  VerifierName,
  Verifiers,
} from "./src/verify/mod.ts";

export type { Kernel, Probs, RhoSolution, Selection, WarpOptions } from "./src/kernel/types.ts";
export { referenceKernel } from "./src/kernel/reference.ts";
export { loadKernel } from "./src/kernel/wasm.ts";
export type { LoadKernelOptions } from "./src/kernel/wasm.ts";
export { Random } from "./src/random.ts";
