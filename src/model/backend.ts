/**
 * The one module that owns onnxruntime: it picks the runtime package for a backend, picks the ONNX
 * file of a model folder, creates the session and serialises its runs (onnxruntime rejects
 * concurrent `run` calls on one session). Modelled on transformers.js `src/backends/onnx.js`.
 *
 * Backends: `"wasm"` (onnxruntime-web, WebAssembly CPU; works everywhere), `"webgpu"`
 * (onnxruntime-web's WebGPU build; needs `navigator.gpu` with an adapter), `"cpu"`
 * (onnxruntime-node, a native addon; imported lazily so edge runtimes never touch it), `"auto"`
 * (cpu where onnxruntime-node loads, else wasm), and `"kernel"`: no onnxruntime at all, the forward pass of
 * a GPT-2 or Llama graph on spectr's own WebAssembly kernel (`src/model/kernel_session.ts`; fp32 and
 * fp16 MatMul graphs), the backend that fits an edge function's memory.
 *
 * @module
 */
import type * as OrtWeb from "npm:onnxruntime-web@1.30.0";
import { BackendUnavailableError, InvalidModelError } from "./errors.ts";
import type { ModelLoader } from "./loader.ts";
import { runThenYield } from "../event_loop.ts";
import { externalDataFiles } from "./external_data.ts";
import { referenceWeights } from "./_external_weights.ts";
import type { FromWorker, ToWorker, WireEnv, WireTensor } from "./_worker_protocol.ts";
import { KernelSession, KernelTensor } from "./kernel_session.ts";
import { readModelConfig } from "./config.ts";

/** The onnxruntime API shared by onnxruntime-web and onnxruntime-node (onnxruntime-common). */
export type Ort = typeof OrtWeb;
/** An onnxruntime tensor. */
export type OrtTensor = OrtWeb.Tensor;
/** Tensor element types the model layer creates. */
export type OrtTensorType = "float32" | "float16" | "int64" | "bool";

/** A backend name as accepted in options. */
export type BackendName = "wasm" | "webgpu" | "cpu" | "kernel" | "auto";
/** A backend a session actually runs on. */
export type ResolvedBackend = Exclude<BackendName, "auto">;
/**
 * Weights precision, which picks the ONNX file as transformers.js and onnx-community folders name
 * them: fp32 → model.onnx, fp16 → model_fp16.onnx, q8 (alias quantized) → model_quantized.onnx,
 * int8 → model_int8.onnx, uint8 → model_uint8.onnx, q4 → model_q4.onnx, q4f16 → model_q4f16.onnx,
 * bnb4 → model_bnb4.onnx.
 */
export type ModelDtype = "fp32" | "fp16" | "q8" | "quantized" | "int8" | "uint8" | "q4" | "q4f16" | "bnb4";

/** The backend names accepted in options. */
export const BACKENDS: readonly BackendName[] = ["wasm", "webgpu", "cpu", "kernel", "auto"];
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

/** Options choosing the runtime and the ONNX file. */
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

/** Name, element type and shape (numbers for static dims, names for symbolic) of a graph input or output. */
export interface ValueMetadata {
  /** The input or output name. */
  name: string;
  /** Element type ("float32", "int64", ...), or undefined when unknown. */
  type?: string;
  /** Dims: a number when static, a string when symbolic; undefined when unknown. */
  shape?: readonly (number | string)[];
}

/**
 * What {@linkcode OnnxSession} needs of a session: onnxruntime's `InferenceSession`, or the stand-in
 * for one that lives in a worker (`worker: true`).
 */
export interface SessionLike {
  /** Graph input names, in order. */
  readonly inputNames: readonly string[];
  /** Graph output names, in order. */
  readonly outputNames: readonly string[];
  /** Runs the graph. */
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  /** Releases the session. */
  release(): Promise<void>;
}

const ortCache = new Map<ResolvedBackend, Promise<Ort>>();

function importOrt(backend: ResolvedBackend): Promise<Ort> {
  let p = ortCache.get(backend);
  if (p === undefined) {
    // Full npm: specifiers (not import-map names), so that mod.ts imports from any folder without
    // this repository's deno.json; tests/deps_test.ts keeps them equal to deno.json's pins.
    // onnxruntime-node is imported lazily, so edge runtimes never touch it.
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
 * Loads the onnxruntime package for a backend; `"auto"` tries onnxruntime-node, then falls back to
 * onnxruntime-web (wasm).
 *
 * @param backend The backend name.
 * @returns The runtime module and the backend it stands for.
 * @throws {RangeError} an unknown backend name.
 * @throws {BackendUnavailableError} the package does not load here, or (webgpu) there is no
 *   `navigator.gpu` or no adapter.
 * @example The WASM runtime loads everywhere
 * ```ts
 * import { loadOrt } from "./backend.ts";
 * const { ort, backend } = await loadOrt("wasm");
 * console.assert(backend === "wasm" && typeof ort.InferenceSession.create === "function");
 * ```
 */
export async function loadOrt(backend: BackendName): Promise<{ ort: Ort; backend: ResolvedBackend }> {
  if (!BACKENDS.includes(backend)) {
    throw new RangeError(
      `Cannot load onnxruntime: backend must be one of ${BACKENDS.join(", ")}, got ${
        JSON.stringify(backend)
      }`,
    );
  }
  if (backend === "kernel") {
    throw new RangeError(
      'Cannot load onnxruntime for backend "kernel": that backend runs without onnxruntime (createOnnxSession handles it)',
    );
  }
  if (backend === "auto") {
    try {
      return { ort: await importOrt("cpu"), backend: "cpu" };
    } catch {
      return loadOrt("wasm");
    }
  }
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
    return { ort: await importOrt(backend), backend };
  } catch (cause) {
    const pkg = backend === "cpu" ? "onnxruntime-node" : "onnxruntime-web";
    throw new BackendUnavailableError(
      `Cannot use the ${backend} backend: ${pkg} does not load here, got ${
        (cause as Error)?.message ?? cause
      }`,
      { cause },
    );
  }
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
 * import { modelFileName } from "./backend.ts";
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
 * An onnxruntime inference session with serialised runs and the metadata the model layer needs.
 *
 * @example A session on the bundled draft model
 * ```ts
 * import { createOnnxSession } from "./backend.ts";
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
  /** The runtime module (for creating tensors of the same onnxruntime-common). */
  readonly ort: Ort;
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
  #session: SessionLike | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  /** Wraps a created session; use {@linkcode createOnnxSession}. */
  constructor(
    ort: Ort,
    session: OrtWeb.InferenceSession | SessionLike,
    backend: ResolvedBackend,
    file: string,
    weightsByReference?: { readonly tensors: number; readonly bytes: number },
  ) {
    this.ort = ort;
    this.#session = session as SessionLike;
    this.backend = backend;
    this.file = file;
    this.weightsByReference = weightsByReference;
    this.inputNames = [...session.inputNames];
    this.outputNames = [...session.outputNames];
    this.inputMetadata = readMetadata(
      session.inputNames,
      (session as { inputMetadata?: unknown }).inputMetadata,
    );
    this.outputMetadata = readMetadata(
      session.outputNames,
      (session as { outputMetadata?: unknown }).outputMetadata,
    );
  }

  /** Metadata of input `name`, or undefined when there is no such input. */
  input(name: string): ValueMetadata | undefined {
    return this.inputMetadata.find((m) => m.name === name);
  }

  /** Metadata of output `name`, or undefined when there is no such output. */
  output(name: string): ValueMetadata | undefined {
    return this.outputMetadata.find((m) => m.name === name);
  }

  /** A CPU tensor of this runtime. */
  tensor(
    type: OrtTensorType,
    data: Float32Array | Uint16Array | BigInt64Array | Uint8Array | boolean[],
    dims: readonly number[],
  ): OrtTensor {
    return new this.ort.Tensor(type as "float32", data as Float32Array, dims);
  }

  /**
   * Runs the graph; calls are queued so at most one runs at a time. On wasm and webgpu, whose
   * runs compute on the calling thread, the event loop gets a turn after the run once the
   * synchronous work since the last turn passed a few ms (see `src/event_loop.ts`). With
   * `worker: true` the forward runs in the worker and this thread is free meanwhile (the same
   * turn then costs no waiting: its timer came due during the forward).
   *
   * @throws {Error} the session was released, or onnxruntime failed.
   */
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>> {
    const result = this.#queue.then(() => {
      const session = this.#session;
      if (session === undefined) {
        throw new Error(`Cannot run the model: the session of ${this.file} was released`);
      }
      if (this.backend === "cpu") {
        return session.run(float16AsBits(this.ort, feeds));
      }
      // onnxruntime-web computes on this thread: let timers and I/O in between forwards.
      return runThenYield(() => session.run(feeds));
    });
    this.#queue = result.catch(() => {});
    return result;
  }

  /** Releases the native / WASM session after queued runs finish; later runs throw. Idempotent. */
  async release(): Promise<void> {
    const session = this.#session;
    if (session === undefined) return;
    await this.#queue;
    this.#session = undefined;
    await session.release();
  }
}

/**
 * onnxruntime-node only: float16 feeds re-wrapped so their data is a Uint16Array of the raw bits.
 * onnxruntime-common stores float16 data as a Float16Array where the runtime has one (Deno does, and
 * onnxruntime-node returns its float16 outputs that way), but the native binding reads a Float16Array
 * as 0 bytes under Deno ("not enough space: expected N, got 0"), so a float16 KV cache could not be
 * fed back. The bits are shared, not copied.
 */
function float16AsBits(ort: Ort, feeds: Record<string, OrtTensor>): Record<string, OrtTensor> {
  let out = feeds;
  for (const [name, tensor] of Object.entries(feeds)) {
    if (tensor.type !== "float16" || tensor.location !== "cpu") continue;
    const data = tensor.data as unknown as { buffer: ArrayBuffer; byteOffset: number; length: number };
    if (data instanceof Uint16Array) continue;
    const bits = new Uint16Array(data.buffer, data.byteOffset, data.length);
    const copy = new ort.Tensor("float16", bits, tensor.dims);
    (copy as unknown as { cpuData: Uint16Array }).cpuData = bits; // what `data` returns and the binding reads
    if (out === feeds) out = { ...feeds };
    out[name] = copy;
  }
  return out;
}

/** The external data files `file`'s graph names, read from the folder beside it. */
async function readExternalData(
  folder: ModelLoader,
  file: string,
  bytes: Uint8Array,
): Promise<{ path: string; data: Uint8Array }[]> {
  let names: string[];
  try {
    names = externalDataFiles(bytes);
  } catch (cause) {
    throw new InvalidModelError(`Cannot load ${file}: ${(cause as Error).message}`, { cause });
  }
  const dir = file.includes("/") ? file.slice(0, file.lastIndexOf("/") + 1) : "";
  // readBytes throws ModelNotFoundError naming a missing side file.
  return await Promise.all(names.map(async (path) => ({ path, data: await folder.readBytes(dir + path) })));
}

function readMetadata(names: readonly string[], raw: unknown): ValueMetadata[] {
  const list = Array.isArray(raw) ? raw : [];
  return names.map((name, i) => {
    const m = list.find((x: { name?: string }) => x?.name === name) ?? list[i];
    if (!m || typeof m !== "object" || (m as { name?: string }).name !== name) return { name };
    const { type, shape } = m as { type?: string; shape?: (number | string)[] };
    return { name, type, shape: Array.isArray(shape) ? shape : undefined };
  });
}

function hasWorker(): boolean {
  return typeof (globalThis as { Worker?: unknown }).Worker === "function";
}

/**
 * Creates an inference session for the ONNX file of a model folder.
 *
 * @param folder The model folder.
 * @param options Backend, threads, dtype, merged, file, wasmPaths, wasmBinary, worker.
 * @returns The session.
 * @throws {RangeError} an unknown backend or dtype, numThreads not an integer ≥ 1, or `worker: true`
 *   with a backend other than "wasm".
 * @throws {TypeError} `worker` not a boolean.
 * @throws {BackendUnavailableError} the backend cannot run here, or `worker: true` where there is no
 *   `Worker` or the session worker does not start.
 * @throws {ModelNotFoundError} the ONNX file is missing.
 * @throws {InvalidModelError} onnxruntime cannot load the file (corrupt or unsupported).
 * @example An in-memory folder with corrupt bytes
 * ```ts
 * import { createOnnxSession } from "./backend.ts";
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
  if (options.backend === "kernel") return await createKernelSession(folder, options);
  const { ort, backend } = await loadOrt(options.backend ?? "auto");
  const file = await pickFile(folder, options);
  const bytes = await folder.readBytes(file);
  const sessionOptions: OrtWeb.InferenceSession.SessionOptions = { executionProviders: [backend] };
  const plan = loadPlan(backend, file, bytes, await readExternalData(folder, file, bytes));
  if (plan.externalData.length > 0) sessionOptions.externalData = plan.externalData;
  if (worker) {
    // copies, moved to the worker: one copy of the weights (a structured clone makes two), and the
    // caller's arrays (an in-memory folder's) stay usable
    const model = plan.model.slice();
    const externalData = plan.externalData.map(({ path, data }) => ({ path, data: data.slice() }));
    const create: ToWorker = { kind: "create", model, externalData, env: workerEnv(ort, options) };
    const transfer = [model, ...externalData.map((e) => e.data)].map((a) => a.buffer as ArrayBuffer);
    let session: WorkerSession;
    try {
      session = await WorkerSession.start(ort, create, transfer, file);
    } catch (cause) {
      if (!(cause instanceof WorkerCreateError)) throw cause; // BackendUnavailableError: no worker
      throw createError(cause.message, cause, backend, file, bytes, folder);
    }
    return new OnnxSession(ort, session, backend, file, plan.moved);
  }
  if (backend === "wasm") {
    const threads = numThreads ?? (hasWorker() ? undefined : 1);
    if (threads !== undefined) ort.env.wasm.numThreads = threads;
    const { wasmPaths, wasmBinary } = options;
    if (wasmPaths !== undefined) {
      const href = (x: string | URL | undefined) => (x instanceof URL ? x.href : x);
      ort.env.wasm.wasmPaths = typeof wasmPaths === "string" || wasmPaths instanceof URL
        ? href(wasmPaths)
        : { mjs: href(wasmPaths.mjs), wasm: href(wasmPaths.wasm) };
    }
    if (wasmBinary !== undefined) ort.env.wasm.wasmBinary = wasmBinary;
  } else if (backend === "cpu" && numThreads !== undefined) {
    sessionOptions.intraOpNumThreads = numThreads;
    sessionOptions.interOpNumThreads = 1;
  }
  let session: OrtWeb.InferenceSession;
  try {
    session = await ort.InferenceSession.create(plan.model, sessionOptions);
  } catch (cause) {
    throw createError(String((cause as Error)?.message ?? cause), cause, backend, file, bytes, folder);
  }
  return new OnnxSession(ort, session, backend, file, plan.moved);
}

/** The stand-in for onnxruntime's module on the kernel backend: only tensors are made with it. */
const KERNEL_ORT = { Tensor: KernelTensor } as unknown as Ort;

/** A session on the kernel backend: the folder's config and ONNX file, no onnxruntime. */
async function createKernelSession(folder: ModelLoader, options: BackendOptions): Promise<OnnxSession> {
  const file = await pickFile(folder, options);
  const config = await readModelConfig(folder);
  const bytes = await folder.readBytes(file);
  const session = await KernelSession.create(bytes, config, file);
  return new OnnxSession(KERNEL_ORT, session as unknown as SessionLike, "kernel", file);
}

/** How a file is handed to onnxruntime: the graph, its external data, the weights moved by reference. */
interface LoadPlan {
  model: Uint8Array;
  externalData: { path: string; data: Uint8Array }[];
  moved?: { tensors: number; bytes: number };
}

/**
 * How to load `bytes`. On wasm, with its large initializers by reference
 * (src/model/_external_weights.ts): onnxruntime-web then copies each of them from `bytes` straight
 * into its tensor, instead of copying the whole file into its WebAssembly heap and parsing it there;
 * that heap never shrinks, so its high-water mark stays the process's for good (measured on the
 * bundled 34 MB target: 103 → 69 MiB of heap, logits bit-identical; docs/deploy.md). Elsewhere, for
 * an ORT-format file (`.ort`, not protobuf), or when nothing is worth moving, the file as it is.
 */
function loadPlan(
  backend: ResolvedBackend,
  file: string,
  bytes: Uint8Array,
  external: { path: string; data: Uint8Array }[],
): LoadPlan {
  if (backend !== "wasm" || file.endsWith(".ort")) return { model: bytes, externalData: external };
  let location = "spectr_weights_by_reference";
  for (let i = 1; external.some((e) => e.path === location); i++) {
    location = `spectr_weights_by_reference_${i}`;
  }
  const byReference = referenceWeights(bytes, location);
  if (byReference === undefined) return { model: bytes, externalData: external };
  return {
    model: byReference.model,
    externalData: [...external, { path: location, data: bytes }],
    moved: byReference.moved,
  };
}

/** The typed error for a session onnxruntime would not create (inline or in the worker). */
function createError(
  message: string,
  cause: unknown,
  backend: ResolvedBackend,
  file: string,
  bytes: Uint8Array,
  folder: ModelLoader,
): Error {
  if (/no available backend found/i.test(message)) {
    return new BackendUnavailableError(
      `Cannot create a session: onnxruntime's ${backend} runtime could not be started (its .wasm / .mjs files ` +
        `missing or unreachable? see wasmPaths / wasmBinary), got ${message}`,
      { cause },
    );
  }
  return new InvalidModelError(
    `Cannot load ${file}: onnxruntime (${backend}) rejected the file (${bytes.length} bytes at ${folder.location}), got ${message}`,
    { cause },
  );
}

// ---------------------------------------------------------------------------------------------
// worker: true — the wasm session in a module Worker (src/model/_session_worker.ts)

/** Throws unless `worker: true` can be honoured: backend "wasm" and a runtime with `Worker`. */
function checkWorkerOption(backend: BackendName | undefined): void {
  if (backend !== "wasm") {
    throw new RangeError(
      `Cannot create a session: worker: true runs an onnxruntime-web wasm session in a Worker and needs ` +
        `backend "wasm", got backend ${JSON.stringify(backend ?? "auto")}${
          backend === undefined ? " (the default)" : ""
        }`,
    );
  }
  const current = (globalThis as { Worker?: unknown }).Worker;
  if (typeof current !== "function") {
    throw new BackendUnavailableError(
      "Cannot create a session with worker: true: this runtime has no Worker (edge runtimes such as Deno Deploy " +
        `have none), got typeof Worker ${JSON.stringify(typeof current)}; use worker: false`,
    );
  }
  if (webWorker() === undefined) {
    throw new BackendUnavailableError(
      "Cannot create a session with worker: true: globalThis.Worker is node:worker_threads' Worker (onnxruntime-web's " +
        "wasm runtime puts it there when its first inline session starts), not the Web Worker, got " +
        `${
          (current as { name?: string }).name
        }; import spectr before starting onnxruntime-web sessions yourself`,
    );
  }
}

/**
 * The Web Worker constructor as this module found it when it was evaluated. onnxruntime-web's
 * Emscripten glue replaces `globalThis.Worker` with node:worker_threads' Worker once its first
 * wasm session starts on this thread (under Deno and Node: `global.Worker = ….Worker`), and that
 * one runs no Web Worker module (no `self`, no `onmessage`).
 */
const WEB_WORKER = (globalThis as { Worker?: typeof Worker }).Worker;

/** The Web Worker constructor to use, or undefined where there is none (or only node:worker_threads'). */
function webWorker(): typeof Worker | undefined {
  if (typeof WEB_WORKER === "function" && WEB_WORKER.name !== "NodeWorker") return WEB_WORKER;
  const current = (globalThis as { Worker?: typeof Worker }).Worker;
  return typeof current === "function" && current.name !== "NodeWorker" ? current : undefined;
}

/** The `ort.env.wasm` settings for the worker: the options', else those this thread's onnxruntime-web uses. */
function workerEnv(ort: Ort, options: BackendOptions): WireEnv {
  const href = (x: string | URL | undefined) => (x instanceof URL ? x.href : x);
  const paths = options.wasmPaths ?? ort.env.wasm.wasmPaths;
  const threads = options.numThreads ?? ort.env.wasm.numThreads;
  const env: WireEnv = {};
  if (typeof threads === "number") env.numThreads = threads;
  if (typeof paths === "string" || paths instanceof URL) env.wasmPaths = href(paths);
  else if (paths) env.wasmPaths = { mjs: href(paths.mjs), wasm: href(paths.wasm) };
  const binary = options.wasmBinary ?? ort.env.wasm.wasmBinary;
  if (binary !== undefined) env.wasmBinary = binary as ArrayBuffer | Uint8Array;
  return env;
}

/** The worker answered `create` with onnxruntime's refusal; `createOnnxSession` types it. */
class WorkerCreateError extends Error {}

/**
 * The stand-in for an onnxruntime-web session that lives in a module Worker. Runs post the feeds
 * (copied once and the copies transferred: the caller reuses its KV-cache tensors) and get the
 * outputs back as transferred buffers,
 * wrapped in tensors of this thread's onnxruntime. Runs are expected one at a time
 * ({@linkcode OnnxSession} queues them); ids pair each answer with its run regardless.
 */
class WorkerSession implements SessionLike {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata: readonly ValueMetadata[];
  readonly outputMetadata: readonly ValueMetadata[];
  readonly #ort: Ort;
  readonly #worker: Worker;
  readonly #file: string;
  readonly #pending = new Map<
    number,
    { resolve: (outputs: Record<string, OrtTensor>) => void; reject: (error: Error) => void }
  >();
  #nextId = 0;
  #failure: Error | undefined;

  private constructor(ort: Ort, worker: Worker, file: string, created: FromWorker & { kind: "created" }) {
    this.#ort = ort;
    this.#worker = worker;
    this.#file = file;
    this.inputNames = created.inputNames;
    this.outputNames = created.outputNames;
    this.inputMetadata = created.inputMetadata;
    this.outputMetadata = created.outputMetadata;
    worker.onmessage = (event: MessageEvent<FromWorker>) => this.#answer(event.data);
    worker.onerror = (event: ErrorEvent) => {
      event.preventDefault(); // handled here: not rethrown on this thread
      this.#fail(`the session worker of ${file} failed, got ${event.message}`);
    };
    worker.onmessageerror = () =>
      this.#fail(`a message from the session worker of ${file} could not be read`);
  }

  /**
   * Starts the worker and creates the session in it.
   *
   * @throws {BackendUnavailableError} the worker (or onnxruntime-web in it) does not start.
   * @throws {WorkerCreateError} onnxruntime rejected the session (its message).
   */
  static async start(
    ort: Ort,
    create: ToWorker,
    transfer: ArrayBuffer[],
    file: string,
  ): Promise<WorkerSession> {
    const unavailable = (what: string, cause?: unknown) =>
      new BackendUnavailableError(
        `Cannot create a session with worker: true: the session worker (${
          new URL("./_session_worker.ts", import.meta.url).href
        }) ${what}; ` +
          `worker mode needs that module beside backend.ts (the edge bundle does not ship it: use worker: false there)`,
        { cause },
      );
    let worker: Worker;
    try {
      // the Web Worker (checkWorkerOption made sure there is one), not a replaced globalThis.Worker
      const Worker = webWorker()!;
      worker = new Worker(new URL("./_session_worker.ts", import.meta.url), { type: "module" });
    } catch (cause) {
      throw unavailable(`could not be created, got ${(cause as Error)?.message ?? cause}`, cause);
    }
    let reply: FromWorker;
    try {
      reply = await new Promise<FromWorker>((resolve, reject) => {
        worker.onmessage = (event: MessageEvent<FromWorker>) => resolve(event.data);
        worker.onerror = (event: ErrorEvent) => {
          event.preventDefault();
          reject(unavailable(`did not start, got ${event.message}`, event.error));
        };
        worker.onmessageerror = () => reject(unavailable("sent a message that could not be read"));
        worker.postMessage(create, transfer);
      });
    } catch (error) {
      worker.terminate();
      throw error;
    }
    if (reply.kind !== "created") {
      worker.terminate();
      if (reply.kind === "createFailed") throw new WorkerCreateError(reply.message);
      throw unavailable(`answered ${JSON.stringify(reply.kind)} to create`);
    }
    return new WorkerSession(ort, worker, file, reply);
  }

  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>> {
    if (this.#failure) return Promise.reject(this.#failure);
    const wire: Record<string, WireTensor> = {};
    const transfer: ArrayBuffer[] = [];
    for (const [name, tensor] of Object.entries(feeds)) {
      if (tensor.location !== "cpu") {
        return Promise.reject(
          new TypeError(
            `Cannot run the model in a worker: feed ${name} must be a CPU tensor, got ${tensor.location}`,
          ),
        );
      }
      // One copy here, then moved: the caller keeps its tensor (the KV cache is fed again), and a
      // structured clone would copy twice (into the message, out of it).
      const copy = (tensor.data as WireTensor["data"]).slice();
      transfer.push(copy.buffer as ArrayBuffer);
      wire[name] = { type: tensor.type, dims: [...tensor.dims], data: copy };
    }
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      try {
        this.#worker.postMessage({ kind: "run", id, feeds: wire } satisfies ToWorker, transfer);
      } catch (cause) {
        this.#pending.delete(id);
        reject(
          new Error(
            `Cannot run the model: the feeds could not be sent to the session worker of ${this.#file}`,
            { cause },
          ),
        );
      }
    });
  }

  #answer(message: FromWorker): void {
    if (message.kind !== "ran" && message.kind !== "runFailed") return;
    const pending = this.#pending.get(message.id);
    if (pending === undefined) return;
    this.#pending.delete(message.id);
    if (message.kind === "runFailed") {
      pending.reject(new Error(message.message));
      return;
    }
    const outputs: Record<string, OrtTensor> = {};
    for (const [name, t] of Object.entries(message.outputs)) {
      outputs[name] = new this.#ort.Tensor(t.type as "float32", t.data as Float32Array, t.dims);
    }
    pending.resolve(outputs);
  }

  #fail(reason: string): void {
    this.#failure ??= new Error(`Cannot run the model: ${reason}`);
    this.#worker.terminate();
    for (const { reject } of this.#pending.values()) reject(this.#failure);
    this.#pending.clear();
  }

  /** Terminates the worker (its wasm memory, session included, goes with it). Idempotent. */
  release(): Promise<void> {
    this.#fail(`the session worker of ${this.#file} was released`);
    return Promise.resolve();
  }
}
