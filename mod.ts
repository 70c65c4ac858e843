/**
 * spectr: exact speculative decoding for JavaScript runtimes — SpecTr's K-SEQ (Sun et al., NeurIPS
 * 2023) and its peers, with a WebAssembly SIMD kernel. A draft model proposes k sequences of L
 * tokens, the target scores them all in one call, and the verifier keeps a prefix so that every
 * output token is an exact sample of the target's (warped) distribution.
 *
 * Entry points:
 * - `mod.ts` (this one, the package root): text generation over ONNX model folders
 *   ({@linkcode SpeculativeGenerator}), the OpenAI-compatible HTTP handler
 *   ({@linkcode createHandler}), the tokenizer and the errors callers catch.
 * - `decode.ts` (`./decode`): the model-agnostic building blocks — the block decoder and the
 *   {@linkcode CausalModel} interface for your own models, the verifiers, the kernels, toy Markov
 *   models, seeded uniforms.
 * - `model.ts` (`./model`): the ONNX model layer — {@linkcode OnnxCausalLM}, model folders,
 *   configs, backends.
 *
 * @example Generate from the bundled model pair
 * ```ts ignore
 * import { SpeculativeGenerator } from "./mod.ts";
 * const gen = await SpeculativeGenerator.fromPretrained({ target: "models/target", draft: "models/draft" });
 * const { text, stats } = await gen.generate("Once upon a time", { maxNewTokens: 64, seed: 1 });
 * console.log(text, stats.blockEfficiency);
 * ```
 *
 * @example Serve it over HTTP
 * ```ts ignore
 * import { createHandler, SpeculativeGenerator } from "./mod.ts";
 * const generator = await SpeculativeGenerator.fromPretrained({ target: "models/target", draft: "models/draft" });
 * Deno.serve({ port: 8000 }, createHandler({ generator }));
 * ```
 *
 * @module
 */

export {
  generationMethods,
  MAX_DRAFT_LENGTH,
  MAX_DRAFTS,
  SpeculativeGenerator,
} from "./src/generate/generator.ts";
export type {
  ChatPrompt,
  FinishReason,
  FromPretrainedOptions,
  GenerationMethod,
  GenerationOptions,
  GenerationPrompt,
  GenerationResult,
  GenerationStats,
  SpeculativeGeneratorInit,
} from "./src/generate/generator.ts";
export type { ChatMessage } from "./src/generate/chat.ts";

export { createHandler } from "./src/serve/handler.ts";
export type {
  HandlerOptions,
  HandlerStats,
  ServeDefaults,
  ServeGenerator,
  ServeHandler,
} from "./src/serve/handler.ts";
export type { ServeMetrics } from "./src/serve/metrics.ts";

export { checkSameVocabulary, StreamingDetokenizer, Tokenizer } from "./src/tokenizer/mod.ts";
export type {
  CheckSameVocabularyOptions,
  DecodeOptions,
  EncodeOptions,
  StreamingDetokenizerOptions,
} from "./src/tokenizer/mod.ts";

export { BackendUnavailableError, InvalidModelError, ModelNotFoundError } from "./src/model/errors.ts";
export { ContextLimitError } from "./src/decode/errors.ts";
export type { BackendName, ResolvedBackend } from "./src/backend/mod.ts";
export type { BackendOptions, ModelDtype } from "./src/model/session.ts";
export type { ModelFiles, ModelSource } from "./src/model/loader.ts";
export type { OnnxCausalLMOptions } from "./src/model/causal_lm.ts";

// Types that the signatures above mention; their implementations live behind ./decode and ./model.
export type { CausalModel } from "./src/decode/model.ts";
export type { DecodeStats, StopReason } from "./src/decode/stats.ts";
export type { Kernel, Probs, WarpOptions } from "./src/kernel/types.ts";
