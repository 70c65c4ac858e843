/**
 * Errors callers of the model layer may want to catch: a model file that is not there, a model
 * that is there but cannot be used, and a backend that cannot run here.
 *
 * Bad arguments (a token id outside the vocabulary, an unknown option value) throw plain
 * `TypeError` / `RangeError` instead.
 *
 * @module
 */

/**
 * A model folder or a file in it does not exist (or could not be fetched).
 *
 * @example Catching a missing folder
 * ```ts
 * import { ModelNotFoundError } from "./errors.ts";
 * import { openModelFolder } from "./loader.ts";
 * import assert from "node:assert/strict";
 * await assert.rejects(() => openModelFolder("/no/such/folder"), ModelNotFoundError);
 * ```
 */
export class ModelNotFoundError extends Error {
  /** The path or URL that is missing. */
  readonly path: string;

  /** Builds the error for `path`; `message` says what was being done. */
  constructor(message: string, path: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ModelNotFoundError";
    this.path = path;
  }
}

/**
 * A model file exists but cannot be used: corrupt ONNX bytes, invalid JSON, an unsupported
 * `model_type`, or a config that disagrees with the ONNX graph.
 *
 * @example Thrown for an unsupported architecture
 * ```ts
 * import { InvalidModelError } from "./errors.ts";
 * import { parseModelConfig } from "./config.ts";
 * import assert from "node:assert/strict";
 * assert.throws(() => parseModelConfig({ model_type: "bert" }), InvalidModelError);
 * ```
 */
export class InvalidModelError extends Error {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "InvalidModelError";
  }
}

/**
 * The requested onnxruntime backend cannot run in this runtime (no WebGPU adapter, the native
 * onnxruntime-node addon does not load, ...).
 *
 * @example Falling back when a backend is unavailable
 * ```ts
 * import { BackendUnavailableError } from "./errors.ts";
 * const error = new BackendUnavailableError("Cannot use the webgpu backend: no adapter");
 * console.assert(error.name === "BackendUnavailableError");
 * ```
 */
export class BackendUnavailableError extends Error {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "BackendUnavailableError";
  }
}
