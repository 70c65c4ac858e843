/**
 * The onnxruntime session of the `wasm`, `webgpu` and `cpu` backends: the ONNX file (and its
 * external data) handed to onnxruntime, inline or (wasm, `worker: true`) in a module Worker, and
 * the session's runs. Internal to the ort backends (./mod.ts).
 *
 * @module
 */
import type * as OrtWeb from "npm:onnxruntime-web@1.30.0";
import { BackendUnavailableError, InvalidModelError } from "../../model/errors.ts";
import { externalDataFiles, referenceWeights } from "../../onnx/external_data.ts";
import type { ModelLoader } from "../../model/loader.ts";
import type { BackendOptions } from "../../model/session.ts";
import type { BackendSession, Tensor, TensorInput, TensorType, ValueMetadata } from "../types.ts";
import type { Ort, OrtBackendName, OrtTensor } from "./load.ts";
import type { ToWorker } from "./_worker_protocol.ts";
import { WorkerCreateError, workerEnv, WorkerSession } from "./worker.ts";

/** An onnxruntime `InferenceSession` as a {@linkcode BackendSession}. */
class OrtSession implements BackendSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata: readonly ValueMetadata[];
  readonly outputMetadata: readonly ValueMetadata[];
  readonly weightsByReference: { readonly tensors: number; readonly bytes: number } | undefined;
  readonly #ort: Ort;
  readonly #session: OrtWeb.InferenceSession;
  readonly #backend: OrtBackendName;

  constructor(
    ort: Ort,
    session: OrtWeb.InferenceSession,
    backend: OrtBackendName,
    weightsByReference: { readonly tensors: number; readonly bytes: number } | undefined,
  ) {
    this.#ort = ort;
    this.#session = session;
    this.#backend = backend;
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

  tensor(type: TensorType, data: TensorInput, dims: readonly number[]): OrtTensor {
    return new this.#ort.Tensor(type as "float32", data as Float32Array, dims);
  }

  run(feeds: Record<string, Tensor>, fetches?: readonly string[]): Promise<Record<string, Tensor>> {
    const ortFeeds: Record<string, OrtTensor> = {};
    for (const [name, tensor] of Object.entries(feeds)) ortFeeds[name] = asOrtTensor(this.#ort, tensor);
    const input = this.#backend === "cpu" ? float16AsBits(this.#ort, ortFeeds) : ortFeeds;
    return fetches === undefined ? this.#session.run(input) : this.#session.run(input, fetches);
  }

  release(): Promise<void> {
    return this.#session.release();
  }
}

/** `tensor` itself when this runtime made it, else a tensor of this runtime over the same data (not copied). */
function asOrtTensor(ort: Ort, tensor: Tensor): OrtTensor {
  if (tensor instanceof ort.Tensor) return tensor;
  return new ort.Tensor(tensor.type as "float32", tensor.data as Float32Array, tensor.dims);
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
 * An onnxruntime session over `file` of `folder` on `backend` (its runtime `ort` already loaded):
 * inline, or with `worker: true` (wasm only; the backend checked the option) in a module Worker.
 *
 * @throws {ModelNotFoundError} the file or one of its external data files is missing.
 * @throws {InvalidModelError} onnxruntime rejects the file.
 * @throws {BackendUnavailableError} onnxruntime's runtime files or the session worker do not start.
 */
export async function createOrtSession(
  ort: Ort,
  backend: OrtBackendName,
  folder: ModelLoader,
  file: string,
  options: BackendOptions,
): Promise<BackendSession> {
  const { numThreads, worker = false } = options;
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
    try {
      return await WorkerSession.start(ort, create, transfer, file, plan.moved);
    } catch (cause) {
      if (!(cause instanceof WorkerCreateError)) throw cause; // BackendUnavailableError: no worker
      throw createError(cause.message, cause, backend, file, bytes, folder);
    }
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
  return new OrtSession(ort, session, backend, plan.moved);
}

/** How a file is handed to onnxruntime: the graph, its external data, the weights moved by reference. */
interface LoadPlan {
  model: Uint8Array;
  externalData: { path: string; data: Uint8Array }[];
  moved?: { tensors: number; bytes: number };
}

/**
 * How to load `bytes`. On wasm, with its large initializers by reference
 * (src/onnx/external_data.ts): onnxruntime-web then copies each of them from `bytes` straight
 * into its tensor, instead of copying the whole file into its WebAssembly heap and parsing it there;
 * that heap never shrinks, so its high-water mark stays the process's for good (measured on the
 * bundled 34 MB target: 103 → 69 MiB of heap, logits bit-identical; docs/deploy.md). Elsewhere, for
 * an ORT-format file (`.ort`, not protobuf), or when nothing is worth moving, the file as it is.
 */
function loadPlan(
  backend: OrtBackendName,
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
  backend: OrtBackendName,
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
