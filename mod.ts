/**
 * spectr: exact speculative decoding for JavaScript runtimes — SpecTr's K-SEQ (Sun et al., NeurIPS
 * 2023) and its peers, with a WebAssembly SIMD kernel. A draft model proposes k sequences of L
 * tokens, the target scores them all in one call, and the verifier keeps a prefix so that every
 * output token is an exact sample of the target's (warped) distribution.
 *
 * The public API is re-exported here: the generation API ({@linkcode SpeculativeGenerator}: text in,
 * text out, over ONNX model folders), the tokenizer, the ONNX model layer ({@linkcode OnnxCausalLM}), the kernel ({@linkcode loadKernel}, {@linkcode referenceKernel}),
 * the verifiers ({@linkcode kseq}, {@linkcode sd}, {@linkcode specInfer}, {@linkcode specInferWor}),
 * the model-agnostic block decoder ({@linkcode createDecoder}, {@linkcode BlockDecoder}, the
 * {@linkcode CausalModel} interface) and toy Markov-chain models.
 *
 * @example Speculative decoding on toy Markov chains
 * ```ts
 * import { createDecoder, loadKernel, MarkovModel, nearMarkovTable, randomMarkovTable } from "./mod.ts";
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

export type { Kernel, Probs, RhoSolution, Selection, WarpOptions } from "./src/kernel/types.ts";
export { referenceKernel } from "./src/kernel/reference.ts";
export { loadKernel, WasmKernel } from "./src/kernel/wasm.ts";
export type { LoadKernelOptions } from "./src/kernel/wasm.ts";
export { Random } from "./src/random.ts";

export { generationMethods, SpeculativeGenerator } from "./src/generate/generator.ts";
export type {
  FinishReason,
  FromPretrainedOptions,
  GenerationMethod,
  GenerationOptions,
  GenerationResult,
  GenerationStats,
  SpeculativeGeneratorInit,
} from "./src/generate/generator.ts";
export { StopMatcher } from "./src/generate/stop.ts";

export { checkSameVocabulary, StreamingDetokenizer, Tokenizer } from "./src/tokenizer/mod.ts";
export type {
  CheckSameVocabularyOptions,
  DecodeOptions,
  EncodeOptions,
  StreamingDetokenizerOptions,
} from "./src/tokenizer/mod.ts";

export {
  BackendUnavailableError,
  InvalidModelError,
  ModelNotFoundError,
  OnnxCausalLM,
  openModelFolder,
  parseModelConfig,
} from "./src/model/mod.ts";
export type {
  BackendName,
  BackendOptions,
  ModelConfig,
  ModelDtype,
  ModelFamily,
  ModelFiles,
  ModelLoader,
  ModelSource,
  OnnxCausalLMOptions,
  ResolvedBackend,
} from "./src/model/mod.ts";

export { getVerifier, kseq, sd, specInfer, specInferWor, verifiers } from "./src/verify/mod.ts";
export type { DraftSampling, Verifier, VerifierName } from "./src/verify/mod.ts";

export {
  AutoregressiveDecoder,
  BlockDecoder,
  createDecoder,
  decodeMethods,
  DraftProposer,
  MarkovModel,
  nearMarkovTable,
  randomMarkovTable,
  TargetScorer,
  TargetScores,
  walkBlock,
} from "./src/decode/mod.ts";
export type {
  AutoregressiveDecoderOptions,
  BlockDecoderOptions,
  BlockResult,
  CausalModel,
  CreateDecoderOptions,
  DecodeMethod,
  Decoder,
  DecodeStats,
  DraftProposal,
  GenerateOptions,
  GenerateResult,
  MarkovModelOptions,
  RandomTableOptions,
  StopReason,
} from "./src/decode/mod.ts";
