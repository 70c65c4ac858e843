/**
 * The backend registry: the one source of every backend name. `BackendName`, `ResolvedBackend`,
 * `BACKENDS` and the per-backend decisions of the model layer, the generator and the edge bundle
 * (does it run onnxruntime, how do threads apply, does it take `worker: true`, is its runtime
 * bundled) derive from {@linkcode backends}; a new backend is one folder exporting a
 * {@linkcode Backend} plus one line here.
 *
 * `"auto"` is not a backend but a selector: {@linkcode resolveBackend} turns it into `cpu` where
 * onnxruntime-node loads, else `wasm`.
 *
 * @module
 */

import type { Backend } from "./types.ts";
import { cpuBackend, isOrtBackendName, loadOrtRuntime, wasmBackend, webgpuBackend } from "./ort/mod.ts";
import type { Ort } from "./ort/mod.ts";
import { kernelBackend } from "./kernel/mod.ts";

export type {
  Backend,
  BackendSession,
  Tensor,
  TensorData,
  TensorInput,
  TensorType,
  ValueMetadata,
} from "./types.ts";
export type { Ort, OrtBackendName, OrtTensor } from "./ort/mod.ts";
export { cpuBackend, kernelBackend, wasmBackend, webgpuBackend };

/** Every shipped backend, keyed by its name (one line per backend; frozen). */
export const backends = {
  wasm: wasmBackend,
  webgpu: webgpuBackend,
  cpu: cpuBackend,
  kernel: kernelBackend,
} as const satisfies Record<string, Backend>;
// Frozen apart from the literal, so that its type stays inferable for the docs (no Object.freeze call type).
Object.freeze(backends);

/** A backend a session actually runs on (the registry's keys). */
export type ResolvedBackend = keyof typeof backends;
/** A backend name as accepted in options: a registered backend, or `"auto"`. */
export type BackendName = ResolvedBackend | "auto";

/** The registered backends, in registry order. */
export const backendNames: readonly ResolvedBackend[] = Object.freeze(
  Object.keys(backends) as ResolvedBackend[],
);

/** The backend names accepted in options: the registered backends, then `"auto"`. */
export const BACKENDS: readonly BackendName[] = Object.freeze([...backendNames, "auto"]);

/** What `"auto"` tries, in order: the first that is available, else the last (whose load then says why not). */
const AUTO: readonly ResolvedBackend[] = ["cpu", "wasm"];

/** Whether `name` is a registered backend (not `"auto"`). */
export function isResolvedBackend(name: unknown): name is ResolvedBackend {
  return typeof name === "string" && Object.hasOwn(backends, name);
}

/**
 * Looks a registered backend up by name.
 *
 * @throws {RangeError} an unknown name (`"auto"` included: {@linkcode resolveBackend} resolves it).
 * @example
 * ```ts
 * import { getBackend } from "./mod.ts";
 * console.assert(getBackend("kernel").onnxruntime === false);
 * console.assert(getBackend("cpu").threads === "session");
 * ```
 */
export function getBackend(name: string): Backend {
  if (!isResolvedBackend(name)) {
    throw new RangeError(
      `Unknown backend ${JSON.stringify(name)}: expected one of ${backendNames.join(", ")}${
        name === "auto" ? ' ("auto" is a selector: resolveBackend picks one of them)' : ""
      }`,
    );
  }
  return backends[name];
}

/**
 * The backend a name stands for: itself, or for `"auto"` the first of cpu (where onnxruntime-node
 * loads), wasm.
 *
 * @param name A backend name or `"auto"`.
 * @param what What is being done, for the message ("Cannot …").
 * @throws {RangeError} an unknown name: "Cannot {what}: backend must be one of …, got …".
 * @example
 * ```ts
 * import { resolveBackend } from "./mod.ts";
 * console.assert(await resolveBackend("kernel") === "kernel");
 * console.assert(["cpu", "wasm"].includes(await resolveBackend("auto")));
 * ```
 */
export async function resolveBackend(name: string, what = "use a backend"): Promise<ResolvedBackend> {
  if (isResolvedBackend(name)) return name;
  if (name !== "auto") {
    throw new RangeError(
      `Cannot ${what}: backend must be one of ${BACKENDS.join(", ")}, got ${JSON.stringify(name)}`,
    );
  }
  for (const candidate of AUTO.slice(0, -1)) {
    if (await backends[candidate].available()) return candidate;
  }
  return AUTO[AUTO.length - 1];
}

/**
 * Throws unless backend `name` runs onnxruntime (`"auto"` always resolves to one; an unknown name
 * passes, for the session factory to reject).
 *
 * @param name The backend option.
 * @param what What needs onnxruntime, for the message ("Cannot {what}: it runs on onnxruntime …").
 * @throws {RangeError} a registered backend without onnxruntime.
 */
export function requireOnnxruntime(name: string | undefined, what: string): void {
  if (!isResolvedBackend(name) || backends[name].onnxruntime) return;
  const names = backendNames.filter((n) => backends[n].onnxruntime).sort().map((n) => JSON.stringify(n));
  const list = names.length > 1 ? `${names.slice(0, -1).join(", ")} or ${names[names.length - 1]}` : names[0];
  throw new RangeError(
    `Cannot ${what}: it runs on onnxruntime (backend ${list}), got ${JSON.stringify(name)}`,
  );
}

/**
 * Loads the onnxruntime package for a backend; `"auto"` tries onnxruntime-node, then falls back to
 * onnxruntime-web (wasm).
 *
 * @param backend The backend name.
 * @returns The runtime module and the backend it stands for.
 * @throws {RangeError} an unknown backend name, or a backend that runs without onnxruntime.
 * @throws {BackendUnavailableError} the package does not load here, or (webgpu) there is no
 *   `navigator.gpu` or no adapter.
 * @example The WASM runtime loads everywhere
 * ```ts
 * import { loadOrt } from "./mod.ts";
 * const { ort, backend } = await loadOrt("wasm");
 * console.assert(backend === "wasm" && typeof ort.InferenceSession.create === "function");
 * ```
 */
export async function loadOrt(backend: BackendName): Promise<{ ort: Ort; backend: ResolvedBackend }> {
  const name = await resolveBackend(backend, "load onnxruntime");
  if (!backends[name].onnxruntime || !isOrtBackendName(name)) {
    throw new RangeError(
      `Cannot load onnxruntime for backend ${
        JSON.stringify(name)
      }: that backend runs without onnxruntime (createOnnxSession handles it)`,
    );
  }
  return { ort: await loadOrtRuntime(name), backend: name };
}
