/**
 * ONNX causal LMs for the block decoder: model folders (path, URL or in-memory), config parsing for
 * GPT-2 and Llama families, onnxruntime sessions on wasm / webgpu / cpu, and
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
export { BACKENDS, createOnnxSession, DTYPES, loadOrt, modelFileName, OnnxSession } from "./backend.ts";
export type {
  BackendName,
  BackendOptions,
  ModelDtype,
  Ort,
  OrtTensor,
  OrtTensorType,
  ResolvedBackend,
  ValueMetadata,
} from "./backend.ts";
export { parseModelConfig, readModelConfig } from "./config.ts";
export type { ModelConfig, ModelFamily } from "./config.ts";
export { openModelFolder } from "./loader.ts";
export type { ModelFiles, ModelLoader, ModelSource } from "./loader.ts";
export { BackendUnavailableError, InvalidModelError, ModelNotFoundError } from "./errors.ts";
