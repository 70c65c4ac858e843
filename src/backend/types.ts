/**
 * What a backend is to the model layer: a {@linkcode Backend} (a name, what it can do, an
 * availability check, a session factory) and the {@linkcode BackendSession} it creates (the graph's
 * names and metadata, a tensor factory, `run`, `release`). The model layer
 * (`OnnxSession` in src/model/session.ts, `OnnxCausalLM`) sees only these types: no
 * onnxruntime module, no Tensor class. The shipped backends are listed in src/backend/mod.ts.
 *
 * @module
 */
import type { ModelLoader } from "../model/loader.ts";
import type { BackendOptions } from "../model/session.ts";

/** Tensor element types the model layer creates. */
export type TensorType = "float32" | "float16" | "int64" | "bool";

/** The elements a tensor factory takes (`bool`: a `Uint8Array` of 0 / 1, or booleans). */
export type TensorInput = Float32Array | Uint16Array | BigInt64Array | Uint8Array | boolean[];

/** The elements of a CPU tensor, as onnxruntime-common types them (float16: the bits, or a Float16Array). */
export type TensorData =
  | Float32Array
  | Uint16Array
  | BigInt64Array
  | Uint8Array
  | Int8Array
  | Int16Array
  | Int32Array
  | Uint32Array
  | Float64Array
  | BigUint64Array
  | string[];

/**
 * A CPU tensor as the model layer feeds and reads it. onnxruntime-common's `Tensor` is one, and so
 * is the kernel backend's `KernelTensor`; a backend's session makes them ({@linkcode BackendSession.tensor}).
 */
export interface Tensor {
  /** Element type ("float32", "int64", "float16", "bool", ...). */
  readonly type: string;
  /** The elements, row-major. */
  readonly data: TensorData;
  /** Dims. */
  readonly dims: readonly number[];
  /** Where the data lives: "cpu" for every tensor the model layer makes or reads. */
  readonly location: string;
  /** Releases the data (nothing to do for a CPU tensor over a JS array). */
  dispose(): void;
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
 * A session of one backend over one graph: what `OnnxSession` wraps (it adds the run
 * queue, the event-loop turns and the metadata lookups).
 */
export interface BackendSession {
  /** Graph input names, in order. */
  readonly inputNames: readonly string[];
  /** Graph output names, in order. */
  readonly outputNames: readonly string[];
  /** Graph input metadata, one entry per input (`{ name }` alone when the runtime does not report it). */
  readonly inputMetadata: readonly ValueMetadata[];
  /** Graph output metadata, one entry per output. */
  readonly outputMetadata: readonly ValueMetadata[];
  /**
   * The initializers handed to the runtime by reference rather than inline (onnxruntime-web), or
   * undefined when none were.
   */
  readonly weightsByReference?: { readonly tensors: number; readonly bytes: number };
  /** A CPU tensor this session can be fed (the data is not copied). */
  tensor(type: TensorType, data: TensorInput, dims: readonly number[]): Tensor;
  /**
   * Runs the graph on `feeds` (tensors made by {@linkcode BackendSession.tensor} or returned by
   * `run`); with `fetches`, only those outputs. One call at a time: `OnnxSession` queues them.
   */
  run(feeds: Record<string, Tensor>, fetches?: readonly string[]): Promise<Record<string, Tensor>>;
  /** Releases the session (its weights and runtime memory). */
  release(): Promise<void>;
}

/**
 * A backend: where a session's forward pass runs. One object per backend, listed once in the
 * registry (src/backend/mod.ts, `backends`), from which the backend names, `BACKENDS` and the
 * per-backend decisions elsewhere (threads, the feature drafter, the edge bundle) derive.
 */
export interface Backend {
  /** The name options use (the registry key). */
  readonly name: string;
  /** One line: what runs the forward pass. */
  readonly description: string;
  /** Whether its sessions run onnxruntime (the feature drafter's graphs need it). */
  readonly onnxruntime: boolean;
  /**
   * How `numThreads` applies: "session" (each session's own thread pool, e.g. onnxruntime-node),
   * "process" (one setting for the whole process, fixed by the first session: onnxruntime-web's
   * wasm), "ignored" (single-threaded, or threads the backend does not control).
   */
  readonly threads: "session" | "process" | "ignored";
  /** Whether it accepts `worker: true` (the session in a module Worker). */
  readonly worker: boolean;
  /**
   * Whether `run` computes on the calling thread, so that the session gives the event loop a turn
   * after runs (src/event_loop.ts); false where the forward runs elsewhere (a native thread pool).
   */
  readonly blocking: boolean;
  /**
   * Whether it runs in an edge function (no native addon, no GPU): the edge bundle
   * (tools/bundle.ts) inlines its runtime and leaves the other backends' `runtimeModule` external.
   */
  readonly edge: boolean;
  /**
   * The npm package (`name@version[/path]`, imported as `npm:` + it) of the runtime module it
   * imports lazily; undefined when it needs none beyond spectr's own.
   */
  readonly runtimeModule?: string;
  /** Whether it can run here (its runtime loads, its device exists). Never throws. */
  available(): Promise<boolean>;
  /**
   * Checks that it can run here and loads its runtime.
   *
   * @throws {BackendUnavailableError} it cannot run here (naming why).
   */
  load(): Promise<void>;
  /**
   * Throws for options it cannot honour here, before anything loads (e.g. `worker: true` where the
   * runtime has no Worker).
   */
  checkOptions?(options: BackendOptions): void;
  /**
   * A session over `file` of `folder` (the file is already chosen; see `createOnnxSession`).
   *
   * @throws {ModelNotFoundError} a file is missing.
   * @throws {InvalidModelError} the backend cannot run the graph.
   * @throws {BackendUnavailableError} its runtime could not be started.
   */
  createSession(folder: ModelLoader, file: string, options: BackendOptions): Promise<BackendSession>;
}
