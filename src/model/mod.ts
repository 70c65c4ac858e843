/**
 * ONNX causal LMs for the block decoder: model folders (path, URL or in-memory), config parsing for
 * GPT-2 and Llama families, sessions on the registered backends (src/backend/mod.ts), and
 * {@linkcode OnnxCausalLM}, a {@linkcode CausalModel} with a KV cache per row.
 *
 * @example Parse a config
 * ```ts
 * import { parseModelConfig } from "./mod.ts";
 * const config = parseModelConfig({ model_type: "gpt2", vocab_size: 9, n_layer: 1, n_head: 2, n_embd: 8, n_positions: 32 });
 * console.assert(config.family === "gpt2");
 * ```
 *
 * @module
 */

export type { CausalModel } from "../decode/model.ts";
export { OnnxCausalLM } from "./causal_lm.ts";
export type { OnnxCausalLMOptions } from "./causal_lm.ts";
export { createOnnxSession, DTYPES, modelFileName, OnnxSession } from "./session.ts";
export type { BackendOptions, ModelDtype } from "./session.ts";
export { BACKENDS, backends, getBackend, loadOrt, resolveBackend } from "../backend/mod.ts";
export type {
  Backend,
  BackendName,
  BackendSession,
  Ort,
  OrtTensor,
  ResolvedBackend,
  Tensor,
  TensorData,
  TensorInput,
  TensorType,
  TensorType as OrtTensorType,
  ValueMetadata,
} from "../backend/mod.ts";
export { parseModelConfig, readModelConfig } from "./config.ts";
export type { ModelConfig, ModelFamily } from "./config.ts";
export { openModelFolder } from "./loader.ts";
export type { ModelFiles, ModelLoader, ModelSource } from "./loader.ts";
export { BackendUnavailableError, InvalidModelError, ModelNotFoundError } from "./errors.ts";
