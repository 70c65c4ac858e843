/**
 * Loading onnxruntime: the package for each onnxruntime backend (onnxruntime-web for `wasm`, its
 * WebGPU build for `webgpu`, onnxruntime-node for `cpu`), imported lazily so that edge runtimes
 * never touch the native addon. Modelled on transformers.js `src/backends/onnx.js`.
 *
 * @module
 */
import type * as OrtWeb from "npm:onnxruntime-web@1.30.0";
import { BackendUnavailableError } from "../../model/errors.ts";

/** The onnxruntime API shared by onnxruntime-web and onnxruntime-node (onnxruntime-common). */
export type Ort = typeof OrtWeb;
/** An onnxruntime tensor. */
export type OrtTensor = OrtWeb.Tensor;
/** The backends that run onnxruntime. */
export type OrtBackendName = "wasm" | "webgpu" | "cpu";

/**
 * The runtime module of each onnxruntime backend, as `name@version[/path]`: `importOrt` imports
 * `npm:` + this, written out as a literal (`deno bundle` inlines or externalizes only imports it
 * can read; src/backend/mod_test.ts checks that the two agree, tests/import_test.ts that the
 * literals pin deno.json's versions). Without the `npm:` prefix here, so that the edge bundle holds
 * no `npm:` specifier but its external imports.
 */
export const ORT_MODULES: Readonly<Record<OrtBackendName, string>> = Object.freeze({
  wasm: "onnxruntime-web@1.30.0",
  webgpu: "onnxruntime-web@1.30.0/webgpu",
  cpu: "onnxruntime-node@1.30.0",
});

/** The package name of each backend's runtime, for messages. */
const PACKAGES: Readonly<Record<OrtBackendName, string>> = {
  wasm: "onnxruntime-web",
  webgpu: "onnxruntime-web",
  cpu: "onnxruntime-node",
};

const ortCache = new Map<OrtBackendName, Promise<Ort>>();

function importOrt(backend: OrtBackendName): Promise<Ort> {
  let p = ortCache.get(backend);
  if (p === undefined) {
    // Literal full npm: specifiers (not import-map names: mod.ts imports from any folder without this
    // repository's deno.json), `npm:` + ORT_MODULES' values. onnxruntime-node is imported lazily, so
    // edge runtimes never touch it.
    if (backend === "cpu") {
      p = import("npm:onnxruntime-node@1.30.0") as unknown as Promise<Ort>;
    } else if (backend === "webgpu") {
      p = import("npm:onnxruntime-web@1.30.0/webgpu") as unknown as Promise<Ort>;
    } else {
      p = import("npm:onnxruntime-web@1.30.0") as unknown as Promise<Ort>;
    }
    p = p.then((m) => {
      const fallback = (m as unknown as { default?: Ort }).default;
      return m.InferenceSession === undefined && fallback?.InferenceSession ? fallback : m;
    });
    p.catch(() => ortCache.delete(backend));
    ortCache.set(backend, p);
  }
  return p;
}

/**
 * Loads the onnxruntime package of an onnxruntime backend (webgpu: after checking that there is an
 * adapter).
 *
 * @param backend The backend.
 * @returns The runtime module.
 * @throws {BackendUnavailableError} the package does not load here, or (webgpu) there is no
 *   `navigator.gpu` or no adapter.
 * @example The WASM runtime loads everywhere
 * ```ts
 * import { loadOrtRuntime } from "./load.ts";
 * const ort = await loadOrtRuntime("wasm");
 * console.assert(typeof ort.InferenceSession.create === "function");
 * ```
 */
export async function loadOrtRuntime(backend: OrtBackendName): Promise<Ort> {
  if (backend === "webgpu") {
    const gpu = (globalThis.navigator as { gpu?: { requestAdapter(): Promise<unknown> } } | undefined)?.gpu;
    if (!gpu) {
      throw new BackendUnavailableError(
        "Cannot use the webgpu backend: navigator.gpu is missing in this runtime",
      );
    }
    let adapter: unknown = null;
    try {
      adapter = await gpu.requestAdapter();
    } catch (cause) {
      throw new BackendUnavailableError(
        `Cannot use the webgpu backend: requestAdapter failed, got ${cause}`,
        {
          cause,
        },
      );
    }
    if (!adapter) {
      throw new BackendUnavailableError("Cannot use the webgpu backend: no WebGPU adapter, got null");
    }
  }
  try {
    return await importOrt(backend);
  } catch (cause) {
    throw new BackendUnavailableError(
      `Cannot use the ${backend} backend: ${PACKAGES[backend]} does not load here, got ${
        (cause as Error)?.message ?? cause
      }`,
      { cause },
    );
  }
}
