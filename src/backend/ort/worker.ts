/**
 * `worker: true`: the onnxruntime-web (wasm) session in a module Worker (./_session_worker.ts;
 * messages in ./_worker_protocol.ts), so that a forward, which onnxruntime-web computes
 * synchronously on the calling thread, leaves this thread free. Internal to the ort backends.
 *
 * @module
 */
import { BackendUnavailableError } from "../../model/errors.ts";
import type { BackendOptions } from "../../model/session.ts";
import type { BackendSession, Tensor, TensorInput, TensorType, ValueMetadata } from "../types.ts";
import type { Ort, OrtTensor } from "./load.ts";
import type { FromWorker, ToWorker, WireEnv, WireTensor } from "./_worker_protocol.ts";

/**
 * Throws unless this runtime can start the session worker: it has a `Worker`, and it is the Web
 * Worker, not node:worker_threads' (the wasm backend's `checkOptions`, before anything loads).
 *
 * @throws {BackendUnavailableError} no usable Worker here.
 */
export function checkWorkerRuntime(): void {
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
export function workerEnv(ort: Ort, options: BackendOptions): WireEnv {
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

/** The worker answered `create` with onnxruntime's refusal; the ort session factory types it. */
export class WorkerCreateError extends Error {}

/**
 * The stand-in for an onnxruntime-web session that lives in a module Worker. Runs post the feeds
 * (copied once and the copies transferred: the caller reuses its KV-cache tensors) and get the
 * outputs back as transferred buffers,
 * wrapped in tensors of this thread's onnxruntime. Runs are expected one at a time
 * (`OnnxSession` queues them); ids pair each answer with its run regardless.
 */
export class WorkerSession implements BackendSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata: readonly ValueMetadata[];
  readonly outputMetadata: readonly ValueMetadata[];
  readonly weightsByReference: { readonly tensors: number; readonly bytes: number } | undefined;
  readonly #ort: Ort;
  readonly #worker: Worker;
  readonly #file: string;
  readonly #pending = new Map<
    number,
    { resolve: (outputs: Record<string, Tensor>) => void; reject: (error: Error) => void }
  >();
  #nextId = 0;
  #failure: Error | undefined;

  private constructor(
    ort: Ort,
    worker: Worker,
    file: string,
    created: FromWorker & { kind: "created" },
    weightsByReference: { readonly tensors: number; readonly bytes: number } | undefined,
  ) {
    this.#ort = ort;
    this.weightsByReference = weightsByReference;
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
    weightsByReference?: { readonly tensors: number; readonly bytes: number },
  ): Promise<WorkerSession> {
    const unavailable = (what: string, cause?: unknown) =>
      new BackendUnavailableError(
        `Cannot create a session with worker: true: the session worker (${
          new URL("./_session_worker.ts", import.meta.url).href
        }) ${what}; ` +
          `worker mode needs that module beside worker.ts (the edge bundle does not ship it: use worker: false there)`,
        { cause },
      );
    let worker: Worker;
    try {
      // the Web Worker (checkWorkerRuntime made sure there is one), not a replaced globalThis.Worker
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
    return new WorkerSession(ort, worker, file, reply, weightsByReference);
  }

  /** A tensor of this thread's onnxruntime (its data is copied to the worker at each run). */
  tensor(type: TensorType, data: TensorInput, dims: readonly number[]): OrtTensor {
    return new this.#ort.Tensor(type as "float32", data as Float32Array, dims);
  }

  run(feeds: Record<string, Tensor>, fetches?: readonly string[]): Promise<Record<string, Tensor>> {
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
        const message: ToWorker = fetches === undefined
          ? { kind: "run", id, feeds: wire }
          : { kind: "run", id, feeds: wire, fetches: [...fetches] };
        this.#worker.postMessage(message, transfer);
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
    const outputs: Record<string, Tensor> = {};
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
