/**
 * The `kernel` backend: no onnxruntime at all, the forward pass of a GPT-2 or Llama graph on
 * spectr's own WebAssembly kernel ({@linkcode KernelSession}; fp32 and fp16 MatMul graphs and the
 * converter's 8-bit ones), the backend that fits an edge function's memory. Single-threaded.
 *
 * @module
 */
import { readModelConfig } from "../../model/config.ts";
import type { ModelLoader } from "../../model/loader.ts";
import type { Backend, BackendSession } from "../types.ts";
import { KernelSession } from "./kernel_session.ts";

export { KernelSession, KernelTensor } from "./kernel_session.ts";

/** `kernel`: spectr's own WebAssembly forward pass (GPT-2 / Llama graphs), no onnxruntime. */
export const kernelBackend: Backend = Object.freeze({
  name: "kernel",
  description: "spectr's own WebAssembly forward pass (GPT-2 / Llama graphs), no onnxruntime",
  onnxruntime: false,
  threads: "ignored",
  worker: false,
  blocking: true,
  edge: true,
  runtimeModule: undefined,
  available: () => Promise.resolve(typeof WebAssembly === "object"),
  load: () => Promise.resolve(),
  /**
   * The folder's config and ONNX file. An 8-bit file (`*_quantized.onnx`) is read straight into the
   * kernel's memory and its codes used where they lie (file_image.ts), never held twice; a float
   * file is read as bytes and its weights copied (most are transposed or widened, so an image
   * would stay beside the copies).
   */
  async createSession(folder: ModelLoader, file: string): Promise<BackendSession> {
    const config = await readModelConfig(folder);
    return file.endsWith("_quantized.onnx")
      ? await KernelSession.load(folder, file, config)
      : await KernelSession.create(await folder.readBytes(file), config, file);
  },
});
