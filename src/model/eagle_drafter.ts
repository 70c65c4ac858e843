/**
 * spectr's feature drafter (EAGLE-style) on onnxruntime: the two graphs of a drafter folder
 * (`model_type: "spectr_eagle"`, see docs/eagle_drafter.md) — `onnx/fuse.onnx` maps the target's
 * features to the drafter's hidden size, the step graph (`onnx/model.onnx` fp32, or
 * `onnx/model_quantized.onnx` for dtype "q8") is one decoder layer over (token, hidden) pairs with
 * its own one-layer KV cache per row whose output is the last position's logits over the draft
 * vocabulary, and `onnx/draft_vocab.json` maps those slots to target ids (d2t) — as an
 * {@linkcode EagleDrafterModel} that `EagleProposer` drives.
 *
 * @module
 */

import type { EagleDrafterModel } from "../decode/eagle_proposer.ts";
import { checkFork, checkSelect } from "../decode/model.ts";
import { requireOnnxruntime, type ResolvedBackend } from "../backend/mod.ts";
import type { Tensor } from "../backend/types.ts";
import { type BackendOptions, createOnnxSession, modelFileName, type OnnxSession } from "./session.ts";
import { InvalidModelError } from "./errors.ts";
import { type ModelSource, openModelFolder } from "./loader.ts";

/** The built file mapping draft slots to target ids: `{ "draft_vocab_size": n, "d2t": [ids] }`. */
export const DRAFT_VOCAB_FILE = "onnx/draft_vocab.json";

/** The fields of a drafter's config.json that the runtime reads. */
export interface EagleDrafterConfig {
  /** Target layers whose hidden states form the features, ascending (the target's feature order). */
  readonly targetHiddenLayers: readonly number[];
  /** The target's hidden size (each feature piece). */
  readonly targetHiddenSize: number;
  /** The drafter's hidden size. */
  readonly hiddenSize: number;
  /** Key / value heads of its one layer. */
  readonly numKvHeads: number;
  /** Per-head size. */
  readonly headDim: number;
  /** The target's vocabulary size. */
  readonly vocabSize: number;
  /** The draft vocabulary's size (the step graph's `draft_logits` width; vocab_size when absent). */
  readonly draftVocabSize: number;
  /** Context limit (max_position_embeddings; 8192 when absent). */
  readonly maxLength: number;
  /** The target folder's name (informational). */
  readonly target: string | undefined;
}

/**
 * Reads a drafter config.json (`model_type: "spectr_eagle"`).
 *
 * @throws {InvalidModelError} another model_type, a missing or non-integer size, layers not
 *   ascending.
 * @example
 * ```ts
 * import { parseEagleDrafterConfig } from "./eagle_drafter.ts";
 * const c = parseEagleDrafterConfig({
 *   model_type: "spectr_eagle", target_hidden_layers: [2, 15, 29], target_hidden_size: 576,
 *   hidden_size: 576, num_key_value_heads: 3, head_dim: 64, vocab_size: 49152,
 * });
 * console.assert(c.targetHiddenLayers.length * c.targetHiddenSize === 1728);
 * ```
 */
export function parseEagleDrafterConfig(json: unknown): EagleDrafterConfig {
  const c = (typeof json === "object" && json !== null ? json : {}) as Record<string, unknown>;
  if (c.model_type !== "spectr_eagle") {
    throw new InvalidModelError(
      `Cannot use the drafter: config.json must have model_type "spectr_eagle", got ${
        JSON.stringify(c.model_type)
      }`,
    );
  }
  const int = (key: string, fallback?: number): number => {
    const v = c[key] ?? fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
      throw new InvalidModelError(
        `Cannot use the drafter: config.json ${key} must be an integer >= 1, got ${v}`,
      );
    }
    return v;
  };
  const layers = c.target_hidden_layers;
  if (
    !Array.isArray(layers) || layers.length === 0 ||
    layers.some((l, i) => !Number.isInteger(l) || l < 0 || (i > 0 && l <= layers[i - 1]))
  ) {
    throw new InvalidModelError(
      `Cannot use the drafter: config.json target_hidden_layers must be ascending layer indices, got ${
        JSON.stringify(layers)
      }`,
    );
  }
  return {
    targetHiddenLayers: Object.freeze(layers.slice() as number[]),
    targetHiddenSize: int("target_hidden_size"),
    hiddenSize: int("hidden_size"),
    numKvHeads: int("num_key_value_heads"),
    headDim: int("head_dim"),
    vocabSize: int("vocab_size"),
    draftVocabSize: int("draft_vocab_size", c.vocab_size as number),
    maxLength: int("max_position_embeddings", 8192),
    target: typeof c.target === "string" ? c.target : undefined,
  };
}

/** Options of {@linkcode OnnxEagleDrafter.load}. */
export interface OnnxEagleDrafterOptions extends Pick<BackendOptions, "backend" | "numThreads" | "file"> {
  /**
   * Which step graph: "fp32" → onnx/model.onnx, "q8" (alias "quantized") → onnx/model_quantized.onnx
   * (8-bit MatMulNBits: fast on onnxruntime-node's cpu, slow on onnxruntime-web), other dtypes →
   * onnx/model_<dtype>.onnx as for any model folder (a drafter folder built by spectr has the first
   * two). `file` overrides it. onnx/fuse.onnx is float32 for every dtype.
   * @default {"fp32"}
   */
  dtype?: BackendOptions["dtype"];
  /**
   * Context limit in positions, at most the config's.
   * @default {the config's max_position_embeddings}
   */
  maxLength?: number;
}

/**
 * A drafter folder's graphs on onnxruntime (backends cpu, wasm, webgpu; not `kernel`).
 *
 * Cache: `past_key_values.0.key|value` float32 `[rows, kvHeads, length, headDim]`;
 * {@linkcode OnnxEagleDrafter.append} runs the step graph on `input_ids [rows, T]`, `hidden_states
 * [rows, T, hidden]`, an all-ones `attention_mask [rows, length + T]`, `position_ids` length … length
 * + T − 1, returns the last position's `draft_logits [rows, draftVocab]` and `hidden_out [rows,
 * hidden]`, and keeps `present.*` as the cache. {@linkcode OnnxEagleDrafter.fork} copies the one row
 * eagerly (one layer: small). {@linkcode OnnxEagleDrafter.draftToTarget} (d2t, from
 * onnx/draft_vocab.json) maps a slot of the draft logits to its target token id.
 *
 * @example
 * ```ts ignore
 * import { OnnxEagleDrafter } from "./eagle_drafter.ts";
 * const drafter = await OnnxEagleDrafter.load("models/smollm2-eagle", { backend: "wasm" });
 * const u = await drafter.fuse(new Float32Array(2 * drafter.featureSize), 2); // [2, hidden]
 * const { logits } = await drafter.append([[10, 11]], u); // [1, draftVocab]: slot s is token d2t[s]
 * ```
 */
export class OnnxEagleDrafter implements EagleDrafterModel {
  /** The config fields read. */
  readonly config: EagleDrafterConfig;
  /** The target's vocabulary size. */
  readonly vocabSize: number;
  /** d2t `[draftVocab]`: slot s of the draft logits is target token `draftToTarget[s]` (strictly ascending). */
  readonly draftToTarget: Int32Array;
  /** The step graph's file (by dtype). */
  readonly file: string;
  /** The drafter's hidden size. */
  readonly hiddenSize: number;
  /** Floats per target feature (layers × target hidden size). */
  readonly featureSize: number;
  /** Context limit in positions. */
  readonly maxLength: number;
  /** `model.onnx` runs so far (the fuse runs are not counted: one rides with each first step). */
  calls = 0;
  readonly #fuse: OnnxSession;
  readonly #model: OnnxSession;
  #past: Tensor[] = [];
  #rows = 1;
  #length = 0;

  private constructor(
    config: EagleDrafterConfig,
    fuse: OnnxSession,
    model: OnnxSession,
    maxLength: number,
    d2t: Int32Array,
  ) {
    this.config = config;
    this.vocabSize = config.vocabSize;
    this.draftToTarget = d2t;
    this.file = model.file;
    this.hiddenSize = config.hiddenSize;
    this.featureSize = config.targetHiddenLayers.length * config.targetHiddenSize;
    this.maxLength = maxLength;
    this.#fuse = fuse;
    this.#model = model;
    this.reset();
  }

  /**
   * Loads a drafter folder: config.json, onnx/draft_vocab.json, onnx/fuse.onnx and the step graph
   * of the dtype (onnx/model.onnx for "fp32", onnx/model_quantized.onnx for "q8").
   *
   * @throws {ModelNotFoundError} a missing folder or file.
   * @throws {InvalidModelError} a config that is not a drafter's, graphs without the contract's
   *   inputs / outputs, a draft_vocab.json that is not strictly ascending ids below vocab_size of
   *   the config's draft_vocab_size.
   * @throws {RangeError} a backend without onnxruntime (`kernel`), a bad maxLength or dtype.
   */
  static async load(source: ModelSource, options: OnnxEagleDrafterOptions = {}): Promise<OnnxEagleDrafter> {
    requireOnnxruntime(options.backend, "load the feature drafter");
    const folder = await openModelFolder(source);
    const config = parseEagleDrafterConfig(await folder.readJson("config.json"));
    let maxLength = config.maxLength;
    if (options.maxLength !== undefined) {
      if (
        !Number.isInteger(options.maxLength) || options.maxLength < 1 || options.maxLength > config.maxLength
      ) {
        throw new RangeError(
          `Cannot load the feature drafter: maxLength must be an integer in [1, ${config.maxLength}], got ${options.maxLength}`,
        );
      }
      maxLength = options.maxLength;
    }
    const file = options.file ?? modelFileName(options.dtype ?? "fp32");
    const d2t = parseDraftVocab(await folder.readJson(DRAFT_VOCAB_FILE), config);
    const base = { backend: options.backend, numThreads: options.numThreads };
    const fuse = await createOnnxSession(folder, { ...base, file: "onnx/fuse.onnx" });
    let model: OnnxSession | undefined;
    try {
      model = await createOnnxSession(folder, { ...base, file });
      checkNames(fuse, ["target_hidden"], ["hidden_states"]);
      checkNames(
        model,
        [
          "input_ids",
          "hidden_states",
          "attention_mask",
          "position_ids",
          "past_key_values.0.key",
          "past_key_values.0.value",
        ],
        ["draft_logits", "hidden_out", "present.0.key", "present.0.value"],
      );
    } catch (error) {
      await fuse.release();
      await model?.release();
      throw error;
    }
    return new OnnxEagleDrafter(config, fuse, model, maxLength, d2t);
  }

  /** The backend the sessions run on. */
  get backend(): ResolvedBackend {
    return this.#model.backend;
  }

  /** Rows held. */
  get rows(): number {
    return this.#rows;
  }

  /** Positions held per row. */
  get length(): number {
    return this.#length;
  }

  /** One empty row. */
  reset(): void {
    const h = this.config.numKvHeads, d = this.config.headDim;
    this.#replace([0, 1].map(() => this.#model.tensor("float32", new Float32Array(0), [1, h, 0, d])));
    this.#rows = 1;
    this.#length = 0;
  }

  /**
   * Maps target features `[positions, featureSize]` to drafter inputs `[positions, hidden]` (fuse.onnx).
   *
   * @throws {RangeError} features of the wrong length.
   */
  async fuse(features: Float32Array, positions: number): Promise<Float32Array> {
    if (!Number.isInteger(positions) || positions < 1 || features.length !== positions * this.featureSize) {
      throw new RangeError(
        `Cannot fuse target features: expected ${positions}×${this.featureSize} floats, got ${features.length}`,
      );
    }
    const input = this.#fuse.tensor("float32", features, [1, positions, this.featureSize]);
    let outputs: Record<string, Tensor>;
    try {
      outputs = await this.#fuse.run({ target_hidden: input });
    } finally {
      input.dispose();
    }
    const out = outputs.hidden_states;
    const data = (out.data as Float32Array).slice();
    for (const t of Object.values(outputs)) t.dispose();
    return data;
  }

  /**
   * Appends `tokens[r]` (all of length T) with their hidden inputs to row r; returns the last
   * position's draft logits `[rows, draftVocab]` (slot s is token `draftToTarget[s]`) and
   * `hidden_out` `[rows, hidden]`.
   *
   * @throws {RangeError} wrong row count, ragged rows, hidden of the wrong length, the context limit.
   */
  async append(
    tokens: ArrayLike<number>[],
    hidden: Float32Array,
  ): Promise<{ logits: Float32Array; hidden: Float32Array }> {
    const rows = this.#rows, t = tokens[0]?.length ?? 0, hs = this.hiddenSize;
    if (tokens.length !== rows || t < 1 || tokens.some((r) => r.length !== t)) {
      throw new RangeError(
        `Cannot run the drafter: expected ${rows} rows of equal length >= 1, got ${tokens.length}`,
      );
    }
    if (hidden.length !== rows * t * hs) {
      throw new RangeError(
        `Cannot run the drafter: expected ${rows}×${t}×${hs} hidden inputs, got ${hidden.length}`,
      );
    }
    if (this.#length + t > this.maxLength) {
      throw new RangeError(
        `Cannot run the drafter: ${this.#length} held + ${t} new exceeds its context limit of ${this.maxLength}`,
      );
    }
    const s = this.#model, past = this.#length, total = past + t;
    const ids = new BigInt64Array(rows * t), positions = new BigInt64Array(rows * t);
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < t; i++) {
        ids[r * t + i] = BigInt(tokens[r][i]);
        positions[r * t + i] = BigInt(past + i);
      }
    }
    const feeds: Record<string, Tensor> = {
      input_ids: s.tensor("int64", ids, [rows, t]),
      hidden_states: s.tensor("float32", hidden, [rows, t, hs]),
      attention_mask: s.tensor("int64", new BigInt64Array(rows * total).fill(1n), [rows, total]),
      position_ids: s.tensor("int64", positions, [rows, t]),
      "past_key_values.0.key": this.#past[0],
      "past_key_values.0.value": this.#past[1],
    };
    let outputs: Record<string, Tensor>;
    try {
      outputs = await s.run(feeds);
    } finally {
      for (const name of ["input_ids", "hidden_states", "attention_mask", "position_ids"]) {
        feeds[name].dispose();
      }
    }
    this.calls++;
    const logits = (outputs.draft_logits.data as Float32Array).slice();
    if (logits.length !== rows * this.draftToTarget.length) {
      throw new InvalidModelError(
        `Cannot run the drafter: ${this.file} returned ${logits.length} draft logits, expected ${rows}×${this.draftToTarget.length}`,
      );
    }
    const hiddenOut = lastPosition(outputs.hidden_out.data as Float32Array, rows, t, hs);
    outputs.draft_logits.dispose();
    outputs.hidden_out.dispose();
    this.#replace([outputs["present.0.key"], outputs["present.0.value"]]);
    this.#length = total;
    return { logits, hidden: hiddenOut };
  }

  /** Copies the one row to `rows` rows. @throws {RangeError} more than one row held, bad `rows`. */
  fork(rows: number): void {
    checkFork(this.#rows, rows);
    if (rows === 1) return;
    const h = this.config.numKvHeads, d = this.config.headDim, len = this.#length;
    this.#replace(this.#past.map((tensor) => {
      const src = tensor.data as Float32Array;
      const out = new Float32Array(rows * src.length);
      for (let r = 0; r < rows; r++) out.set(src, r * src.length);
      return this.#model.tensor("float32", out, [rows, h, len, d]);
    }));
    this.#rows = rows;
  }

  /** Keeps row `row` cut to `length` positions. @throws {RangeError} row or length out of range. */
  select(row: number, length: number): void {
    checkSelect(row, length, this);
    const h = this.config.numKvHeads, d = this.config.headDim, held = this.#length;
    if (this.#rows === 1 && length === held) return;
    this.#replace(this.#past.map((tensor) => {
      const src = tensor.data as Float32Array;
      const out = new Float32Array(h * length * d);
      for (let head = 0; head < h; head++) {
        const at = (row * h + head) * held * d;
        out.set(src.subarray(at, at + length * d), head * length * d);
      }
      return this.#model.tensor("float32", out, [1, h, length, d]);
    }));
    this.#rows = 1;
    this.#length = length;
  }

  /** Releases both sessions. */
  async dispose(): Promise<void> {
    this.#replace([]);
    await this.#fuse.release();
    await this.#model.release();
  }

  #replace(next: Tensor[]): void {
    for (const t of this.#past) t.dispose();
    this.#past = next;
  }
}

/** The last of `t` positions per row of `[rows, t, width]`. */
function lastPosition(all: Float32Array, rows: number, t: number, width: number): Float32Array {
  if (t === 1) return all.slice();
  const out = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) {
    out.set(all.subarray((r * t + t - 1) * width, (r * t + t) * width), r * width);
  }
  return out;
}

/** d2t from draft_vocab.json: `draftVocabSize` strictly ascending ids below `vocabSize`. */
function parseDraftVocab(json: unknown, config: EagleDrafterConfig): Int32Array {
  const ids = (json as { d2t?: unknown } | null)?.d2t;
  const n = config.draftVocabSize, v = config.vocabSize;
  const bad = (why: string): never => {
    throw new InvalidModelError(`Cannot use the drafter: ${DRAFT_VOCAB_FILE} ${why} (rebuild the folder)`);
  };
  if (!Array.isArray(ids) || ids.length !== n) {
    bad(
      `must hold d2t, ${n} ids (config draft_vocab_size), got ${
        Array.isArray(ids) ? ids.length : typeof ids
      }`,
    );
  }
  const d2t = new Int32Array(n);
  for (let s = 0; s < n; s++) {
    const id = (ids as unknown[])[s];
    if (
      !Number.isInteger(id) || (id as number) < 0 || (id as number) >= v ||
      (s > 0 && (id as number) <= d2t[s - 1])
    ) {
      bad(`must be strictly ascending ids in [0, ${v}), got d2t[${s}] = ${id}`);
    }
    d2t[s] = id as number;
  }
  return d2t;
}

function checkNames(session: OnnxSession, inputs: string[], outputs: string[]): void {
  for (const name of inputs) {
    if (!session.inputNames.includes(name)) {
      throw new InvalidModelError(
        `Cannot use ${session.file} as a feature drafter graph: it has no ${name} input, got inputs ${
          session.inputNames.join(", ")
        }`,
      );
    }
  }
  for (const name of outputs) {
    if (!session.outputNames.includes(name)) {
      throw new InvalidModelError(
        `Cannot use ${session.file} as a feature drafter graph: it has no ${name} output, got outputs ${
          session.outputNames.join(", ")
        }`,
      );
    }
  }
}
