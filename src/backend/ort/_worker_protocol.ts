/**
 * The messages between the worker session (src/backend/ort/worker.ts) and its session worker
 * (src/backend/ort/_session_worker.ts) when a wasm session runs in a Worker (`worker: true`). Internal:
 * not part of the public API.
 *
 * Releasing the session terminates the worker (its wasm memory goes with it), so there is no
 * release message. Tensors travel as `{ type, dims, data }` with `data` a typed array owning its
 * whole buffer, always transferred: the main thread sends copies of its feeds (it keeps using its
 * KV-cache tensors; one copy, where a structured clone of the original would make two), the worker
 * sends its outputs themselves (they move to the main thread without a copy).
 *
 * @module
 */

/** Typed arrays a CPU tensor of the model layer holds (Float16Array where the runtime has it). */
export type WireData =
  | Float32Array
  | Uint16Array
  | BigInt64Array
  | Int32Array
  | Uint8Array
  | Int8Array
  | Float64Array
  | BigUint64Array
  | Uint32Array
  | Int16Array;

/** A CPU tensor on the wire. */
export interface WireTensor {
  /** onnxruntime element type ("float32", "int64", "float16", "bool", ...). */
  type: string;
  /** Shape. */
  dims: number[];
  /** Elements: one whole buffer (offset 0, full length), so a transfer moves nothing else. */
  data: WireData;
}

/** Name, element type and shape of a graph input or output, as the worker reads them. */
export interface WireMetadata {
  name: string;
  type?: string;
  shape?: (number | string)[];
}

/** The onnxruntime-web settings the worker applies to its own `ort.env.wasm` before creating the session. */
export interface WireEnv {
  numThreads?: number;
  wasmPaths?: string | { mjs?: string; wasm?: string };
  wasmBinary?: ArrayBuffer | Uint8Array;
}

/** Main thread → worker. */
export type ToWorker =
  | {
    kind: "create";
    /** The ONNX bytes (a copy; the caller's array stays usable). */
    model: Uint8Array;
    /** External data files the graph names, as onnxruntime's `externalData` option takes them. */
    externalData?: { path: string; data: Uint8Array }[];
    env: WireEnv;
  }
  | {
    kind: "run";
    id: number;
    feeds: Record<string, WireTensor>;
    /** Only these outputs (all when absent). */
    fetches?: string[];
  };

/** Worker → main thread. */
export type FromWorker =
  | {
    kind: "created";
    inputNames: string[];
    outputNames: string[];
    inputMetadata: WireMetadata[];
    outputMetadata: WireMetadata[];
  }
  | { kind: "createFailed"; message: string }
  | { kind: "ran"; id: number; outputs: Record<string, WireTensor> }
  | { kind: "runFailed"; id: number; message: string };

/** `data` as a typed array that owns its whole buffer: itself when it already does, else a copy. */
export function wholeBuffer<T extends WireData>(data: T): T {
  const buffer = data.buffer as ArrayBuffer;
  if (data.byteOffset === 0 && data.byteLength === buffer.byteLength && !isShared(buffer)) return data;
  return data.slice() as T;
}

function isShared(buffer: ArrayBufferLike): boolean {
  return typeof SharedArrayBuffer === "function" && buffer instanceof SharedArrayBuffer;
}
