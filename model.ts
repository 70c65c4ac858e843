/**
 * The ONNX model layer of spectr (`./model`): {@linkcode OnnxCausalLM} (a causal LM over an
 * onnxruntime session with a KV cache that forks into k rows and crops back to the accepted one),
 * model folders from a path, a URL or in-memory files, config parsing for GPT-2 and Llama/Qwen
 * style models, and the backends: the registry {@linkcode backends} (`wasm`, `webgpu`, `cpu`, `kernel`;
 * `auto` picks cpu or wasm) and the {@linkcode Backend} interface each implements.
 *
 * @example Load the bundled draft model and score a prompt
 * ```ts
 * import { OnnxCausalLM } from "./model.ts";
 * const model = await OnnxCausalLM.load(new URL("./models/draft", import.meta.url), { backend: "wasm" });
 * const logits = await model.append([[1, 2, 3]], 1);
 * console.assert(logits.length === model.vocabSize);
 * await model.dispose();
 * ```
 *
 * @module
 */

export { backends, getBackend, OnnxCausalLM, openModelFolder, parseModelConfig } from "./src/model/mod.ts";
export type {
  Backend,
  BackendName,
  BackendOptions,
  BackendSession,
  ModelConfig,
  ModelDtype,
  ModelFamily,
  ModelFiles,
  ModelLoader,
  ModelSource,
  OnnxCausalLMOptions,
  ResolvedBackend,
  Tensor,
  TensorData,
  TensorInput,
  TensorType,
  ValueMetadata,
} from "./src/model/mod.ts";
export { BackendUnavailableError, InvalidModelError, ModelNotFoundError } from "./src/model/errors.ts";
export { OnnxEagleDrafter, parseEagleDrafterConfig } from "./src/model/eagle_drafter.ts";
export type { EagleDrafterConfig, OnnxEagleDrafterOptions } from "./src/model/eagle_drafter.ts";
