/**
 * The session the model layer runs a graph through: {@linkcode createOnnxSession} picks the ONNX
 * file of a model folder (dtype, merged, file), resolves the backend in the registry
 * (src/backend/mod.ts; `"auto"` → cpu or wasm) and has it create its session;
 * {@linkcode OnnxSession} serialises the runs (onnxruntime rejects concurrent `run` calls on one
 * session), gives the event loop a turn after runs that compute on this thread, and answers the
 * graph's names and metadata. Nothing here knows a backend by name.
 *
 * @module
 */
import {
  type BackendName,
  backendNames,
  backends,
  getBackend,
  resolveBackend,
  type ResolvedBackend,
} from "../backend/mod.ts";
import type { BackendSession, Tensor, TensorInput, TensorType, ValueMetadata } from "../backend/types.ts";
import { runThenYield } from "../event_loop.ts";
import type { ModelLoader } from "./loader.ts";

/**
 * Weights precision, which picks the ONNX file as transformers.js and onnx-community folders name
 * them: fp32 → model.onnx, fp16 → model_fp16.onnx, q8 (alias quantized) → model_quantized.onnx,
 * int8 → model_int8.onnx, uint8 → model_uint8.onnx, q4 → model_q4.onnx, q4f16 → model_q4f16.onnx,
 * bnb4 → model_bnb4.onnx.
 */
export type ModelDtype = "fp32" | "fp16" | "q8" | "quantized" | "int8" | "uint8" | "q4" | "q4f16" | "bnb4";

/** The dtypes accepted in options. */
export const DTYPES: readonly ModelDtype[] = [
  "fp32",
  "fp16",
  "q8",
  "quantized",
  "int8",
  "uint8",
  "q4",
  "q4f16",
  "bnb4",
];

const SUFFIX: Record<ModelDtype, string> = {
  fp32: "",
  fp16: "_fp16",
  q8: "_quantized",
  quantized: "_quantized",
  int8: "_int8",
  uint8: "_uint8",
  q4: "_q4",
  q4f16: "_q4f16",
  bnb4: "_bnb4",
};

/** Options choosing the backend, its settings and the ONNX file. */
export interface BackendOptions {
  /**
   * Where the session runs: "wasm" | "webgpu" | "cpu" | "kernel" | "auto" ("kernel": spectr's own
   * WebAssembly forward pass, no onnxruntime; GPT-2 / Llama fp32 or fp16 graphs; single-threaded).
   * @default {"auto"}
   */
  backend?: BackendName;
  /**
   * Threads: for wasm, `env.wasm.numThreads` (process-wide, fixed by the first wasm session); for
   * cpu, the session's `intraOpNumThreads`. Ignored by webgpu.
   * @default {1 for wasm where `Worker` is missing, else onnxruntime's default}
   */
  numThreads?: number;
  /**
   * Weights precision, which picks the file: "fp32" (onnx/model.onnx), "fp16"
   * (onnx/model_fp16.onnx), "q8" or "quantized" (onnx/model_quantized.onnx), "int8", "uint8",
   * "q4", "q4f16", "bnb4" (onnx/model_<dtype>.onnx). Weights in external data files
   * (`model.onnx_data`, …) are found from the graph and loaded from the same folder.
   * @default {"fp32"}
   */
  dtype?: ModelDtype;
  /**
   * Use the merged decoder (onnx/decoder_model_merged{suffix}.onnx, with a `use_cache_branch`
   * input): true = only it, false = only onnx/model{suffix}.onnx, undefined = model{suffix}.onnx
   * when present, else the merged one.
   * @default {undefined}
   */
  merged?: boolean;
  /**
   * An explicit ONNX file inside the folder (e.g. "onnx/model_custom.onnx"); overrides dtype and
   * merged.
   * @default {undefined}
   */
  file?: string;
  /**
   * wasm only: where onnxruntime-web finds its own runtime files (`env.wasm.wasmPaths`: a folder
   * URL, or the `.mjs` / `.wasm` URLs), for bundles and edge runtimes. Process-wide: the first
   * wasm session fixes it.
   * @default {onnxruntime-web's own lookup next to its module}
   */
  wasmPaths?: string | URL | { mjs?: string | URL; wasm?: string | URL };
  /**
   * wasm only: the bytes of onnxruntime-web's `.wasm` runtime (`env.wasm.wasmBinary`), for runtimes
   * that cannot fetch it. Process-wide, like `wasmPaths`.
   * @default {undefined}
   */
  wasmBinary?: ArrayBuffer | Uint8Array;
  /**
   * wasm only: run the onnxruntime-web session in a dedicated module Worker, so that a forward
   * (which onnxruntime-web computes synchronously on the calling thread) leaves this thread free:
   * timers, I/O and other requests run during the whole forward, not only between forwards. Each
   * `run` copies the feeds to the worker (KV cache included) and gets the outputs back without a
   * copy (transferred). The worker has its own onnxruntime-web: `numThreads`, `wasmPaths` and
   * `wasmBinary` (else this thread's `ort.env.wasm` values) apply to it alone, and it holds its own
   * copy of the runtime and the weights. `release()` terminates it. Needs `backend: "wasm"` and a
   * runtime with `Worker` (edge runtimes such as Deno Deploy have none); not available from the
   * edge bundle (tools/bundle.ts), which does not ship the worker module (BackendUnavailableError).
   * A live worker keeps the process running: dispose the model (or release the session) when done.
   * @default {false}
   */
  worker?: boolean;
}

/**
 * The ONNX file name inside a model folder for a dtype.
 *
 * @param dtype Weights precision.
 * @param merged Whether to name the merged decoder.
 * @returns The relative file name.
 * @throws {RangeError} an unknown dtype.
 * @example
 * ```ts
 * import { modelFileName } from "./session.ts";
 * import assert from "node:assert/strict";
 * assert.equal(modelFileName("q8"), "onnx/model_quantized.onnx");
 * assert.equal(modelFileName("fp16", true), "onnx/decoder_model_merged_fp16.onnx");
 * ```
 */
export function modelFileName(dtype: ModelDtype, merged = false): string {
  if (!DTYPES.includes(dtype)) {
    throw new RangeError(
      `Cannot pick a model file: dtype must be one of ${DTYPES.join(", ")}, got ${JSON.stringify(dtype)}`,
    );
  }
  return `onnx/${merged ? "decoder_model_merged" : "model"}${SUFFIX[dtype]}.onnx`;
}

/**
 * A backend's session over one graph, with serialised runs and the metadata the model layer needs.
 *
 * @example A session on the bundled draft model
 * ```ts
 * import { createOnnxSession } from "./session.ts";
 * import { openModelFolder } from "./loader.ts";
 * const folder = await openModelFolder(new URL("../../models/draft", import.meta.url));
 * const session = await createOnnxSession(folder, { backend: "wasm", numThreads: 1 });
 * console.log(session.inputNames);
 * await session.release();
 * ```
 */
export class OnnxSession {
  /** The backend the session runs on. */
  readonly backend: ResolvedBackend;
  /** The ONNX file, relative to the model folder. */
  readonly file: string;
  /** Graph input names, in order. */
  readonly inputNames: readonly string[];
  /** Graph output names, in order. */
  readonly outputNames: readonly string[];
  /** Graph input metadata (empty entries when the runtime does not report it). */
  readonly inputMetadata: readonly ValueMetadata[];
  /** Graph output metadata (empty entries when the runtime does not report it). */
  readonly outputMetadata: readonly ValueMetadata[];
  /**
   * wasm: the initializers that were handed to onnxruntime-web by reference (as external data
   * pointing into the file's own bytes) rather than inline, so that its WebAssembly heap holds
   * about one copy of them instead of two or three; undefined when none were (other backends,
   * or a graph with no large inline initializers).
   */
  readonly weightsByReference: { readonly tensors: number; readonly bytes: number } | undefined;
  /** The session's tensor factory (kept after release: tensors outlive it). */
  readonly #tensors: Pick<BackendSession, "tensor">;
  /** Whether runs compute on this thread (then the event loop gets a turn after them). */
  readonly #blocking: boolean;
  #session: BackendSession | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  /** Wraps a backend's session; use {@linkcode createOnnxSession}. */
  constructor(session: BackendSession, backend: ResolvedBackend, file: string) {
    this.#session = session;
    this.#tensors = { tensor: session.tensor.bind(session) };
    this.#blocking = getBackend(backend).blocking;
    this.backend = backend;
    this.file = file;
    this.weightsByReference = session.weightsByReference;
    this.inputNames = [...session.inputNames];
    this.outputNames = [...session.outputNames];
    this.inputMetadata = [...session.inputMetadata];
    this.outputMetadata = [...session.outputMetadata];
  }

  /** Metadata of input `name`, or undefined when there is no such input. */
  input(name: string): ValueMetadata | undefined {
    return this.inputMetadata.find((m) => m.name === name);
  }

  /** Metadata of output `name`, or undefined when there is no such output. */
  output(name: string): ValueMetadata | undefined {
    return this.outputMetadata.find((m) => m.name === name);
  }

  /** A CPU tensor this session can be fed (the backend's own tensor; the data is not copied). */
  tensor(type: TensorType, data: TensorInput, dims: readonly number[]): Tensor {
    return this.#tensors.tensor(type, data, dims);
  }

  /**
   * Runs the graph; calls are queued so at most one runs at a time. On backends whose runs compute
   * on the calling thread (wasm, webgpu, kernel: `Backend.blocking`), the event loop gets a turn
   * after the run once the synchronous work since the last turn passed a few ms (see
   * `src/event_loop.ts`). With `worker: true` the forward runs in the worker and this thread is
   * free meanwhile (the same turn then costs no waiting: its timer came due during the forward).
   *
   * @param feeds The inputs, made by {@linkcode OnnxSession.tensor} or returned by an earlier run.
   * @param fetches Only these outputs (all when absent).
   * @throws {Error} the session was released, or the backend failed.
   */
  run(feeds: Record<string, Tensor>, fetches?: readonly string[]): Promise<Record<string, Tensor>> {
    const result = this.#queue.then(() => {
      const session = this.#session;
      if (session === undefined) {
        throw new Error(`Cannot run the model: the session of ${this.file} was released`);
      }
      const run = () => (fetches === undefined ? session.run(feeds) : session.run(feeds, fetches));
      // a forward on this thread: let timers and I/O in between forwards
      return this.#blocking ? runThenYield(run) : run();
    });
    this.#queue = result.catch(() => {});
    return result;
  }

  /** Releases the backend's session after queued runs finish; later runs throw. Idempotent. */
  async release(): Promise<void> {
    const session = this.#session;
    if (session === undefined) return;
    await this.#queue;
    this.#session = undefined;
    await session.release();
  }
}

async function pickFile(folder: ModelLoader, options: BackendOptions): Promise<string> {
  if (options.file !== undefined) return options.file;
  const dtype = options.dtype ?? "fp32";
  const plain = modelFileName(dtype, false);
  const merged = modelFileName(dtype, true);
  if (options.merged === true) return merged;
  if (options.merged === false) return plain;
  if (await folder.has(plain)) return plain;
  if (await folder.has(merged)) return merged;
  return plain; // reading it throws ModelNotFoundError naming it
}

/**
 * Creates a session for the ONNX file of a model folder on the backend the options name.
 *
 * @param folder The model folder.
 * @param options Backend, threads, dtype, merged, file, wasmPaths, wasmBinary, worker.
 * @returns The session.
 * @throws {RangeError} an unknown backend or dtype, numThreads not an integer ≥ 1, or `worker: true`
 *   with a backend that does not take it (only "wasm" does).
 * @throws {TypeError} `worker` not a boolean.
 * @throws {BackendUnavailableError} the backend cannot run here, or `worker: true` where there is no
 *   `Worker` or the session worker does not start.
 * @throws {ModelNotFoundError} the ONNX file is missing.
 * @throws {InvalidModelError} the backend cannot load the file (corrupt or unsupported).
 * @example An in-memory folder with corrupt bytes
 * ```ts
 * import { createOnnxSession } from "./session.ts";
 * import { InvalidModelError } from "./errors.ts";
 * import { openModelFolder } from "./loader.ts";
 * import assert from "node:assert/strict";
 * const folder = await openModelFolder({ "onnx/model.onnx": new Uint8Array([1, 2, 3]) });
 * await assert.rejects(() => createOnnxSession(folder, { backend: "wasm" }), InvalidModelError);
 * ```
 */
export async function createOnnxSession(
  folder: ModelLoader,
  options: BackendOptions = {},
): Promise<OnnxSession> {
  const { numThreads, worker = false } = options;
  if (numThreads !== undefined && (!Number.isInteger(numThreads) || numThreads < 1)) {
    throw new RangeError(`Cannot create a session: numThreads must be an integer >= 1, got ${numThreads}`);
  }
  if (options.dtype !== undefined) modelFileName(options.dtype);
  if (typeof worker !== "boolean") {
    throw new TypeError(`Cannot create a session: worker must be a boolean, got ${JSON.stringify(worker)}`);
  }
  if (worker) checkWorkerOption(options.backend);
  const name = await resolveBackend(options.backend ?? "auto", "create a session");
  const backend = getBackend(name);
  backend.checkOptions?.(options);
  await backend.load();
  const file = await pickFile(folder, options);
  return new OnnxSession(await backend.createSession(folder, file, options), name, file);
}

/** Throws unless `worker: true` goes with a backend that takes it (`Backend.worker`). */
function checkWorkerOption(backend: BackendName | undefined): void {
  const names = backendNames.filter((n) => backends[n].worker);
  if (backend !== undefined && (names as readonly string[]).includes(backend)) return;
  throw new RangeError(
    `Cannot create a session: worker: true runs the session in a Worker and needs ` +
      `backend ${names.map((n) => JSON.stringify(n)).join(" or ")}, got backend ${
        JSON.stringify(backend ?? "auto")
      }${backend === undefined ? " (the default)" : ""}`,
  );
}
