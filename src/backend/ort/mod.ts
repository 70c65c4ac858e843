/**
 * The onnxruntime backends: `wasm` (onnxruntime-web, WebAssembly CPU; works everywhere, and with
 * `worker: true` in a module Worker), `webgpu` (onnxruntime-web's WebGPU build; needs
 * `navigator.gpu` with an adapter) and `cpu` (onnxruntime-node, a native addon; imported lazily so
 * edge runtimes never touch it). Each runs the ONNX file as it is, so any graph onnxruntime runs.
 *
 * @module
 */
import type { ModelLoader } from "../../model/loader.ts";
import type { BackendOptions } from "../../model/session.ts";
import type { Backend, BackendSession } from "../types.ts";
import { loadOrtRuntime, ORT_MODULES, type OrtBackendName } from "./load.ts";
import { createOrtSession } from "./session.ts";
import { checkWorkerRuntime } from "./worker.ts";

export { loadOrtRuntime, ORT_MODULES } from "./load.ts";
export type { Ort, OrtBackendName, OrtTensor } from "./load.ts";

function ortBackend(
  name: OrtBackendName,
  traits: Pick<Backend, "description" | "threads" | "worker" | "blocking" | "edge" | "checkOptions">,
): Backend {
  return Object.freeze({
    name,
    onnxruntime: true,
    runtimeModule: ORT_MODULES[name],
    ...traits,
    available: () => loadOrtRuntime(name).then(() => true, () => false),
    load: async () => {
      await loadOrtRuntime(name);
    },
    createSession: async (
      folder: ModelLoader,
      file: string,
      options: BackendOptions,
    ): Promise<BackendSession> => createOrtSession(await loadOrtRuntime(name), name, folder, file, options),
  });
}

/** `wasm`: onnxruntime-web's WebAssembly CPU runtime; `numThreads` is process-wide (`env.wasm.numThreads`). */
export const wasmBackend: Backend = ortBackend("wasm", {
  description: "onnxruntime-web, WebAssembly on the CPU",
  threads: "process",
  worker: true,
  blocking: true,
  edge: true,
  checkOptions(options: BackendOptions): void {
    if (options.worker) checkWorkerRuntime();
  },
});

/** `webgpu`: onnxruntime-web's WebGPU build; needs `navigator.gpu` with an adapter. */
export const webgpuBackend: Backend = ortBackend("webgpu", {
  description: "onnxruntime-web's WebGPU build",
  threads: "ignored",
  worker: false,
  blocking: true,
  edge: false,
  checkOptions: undefined,
});

/** `cpu`: onnxruntime-node, a native addon with its own thread pool per session (`intraOpNumThreads`). */
export const cpuBackend: Backend = ortBackend("cpu", {
  description: "onnxruntime-node, native CPU",
  threads: "session",
  worker: false,
  blocking: false,
  edge: false,
  checkOptions: undefined,
});

/**
 * Whether `name` is an onnxruntime backend's (one {@linkcode loadOrtRuntime} loads).
 *
 * @example
 * ```ts
 * import { isOrtBackendName } from "./mod.ts";
 * console.assert(isOrtBackendName("wasm") && !isOrtBackendName("kernel"));
 * ```
 */
export function isOrtBackendName(name: string): name is OrtBackendName {
  return Object.hasOwn(ORT_MODULES, name);
}
