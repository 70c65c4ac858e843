/**
 * A Hugging Face / Optimum ONNX causal LM (GPT-2 or Llama family, with `past_key_values` inputs)
 * as a {@linkcode CausalModel}: a KV cache per row that the block decoder forks, extends and rolls
 * back without recompute.
 *
 * @module
 */

import {
  type CausalModel,
  checkAppend,
  checkAppendTree,
  checkFork,
  checkKeepTreePath,
  checkSelect,
} from "../decode/model.ts";
import type { ResolvedBackend } from "../backend/mod.ts";
import type { Tensor } from "../backend/types.ts";
import { type BackendOptions, createOnnxSession, type OnnxSession } from "./session.ts";
import { type ModelConfig, readModelConfig } from "./config.ts";
import { InvalidModelError } from "./errors.ts";
import { type ModelSource, openModelFolder } from "./loader.ts";

/** Options of {@linkcode OnnxCausalLM.load}: the backend options plus a context cap. */
export interface OnnxCausalLMOptions extends BackendOptions {
  /**
   * Context limit in tokens, at most the config's (n_positions / max_position_embeddings).
   * @default {the config's limit}
   */
  maxLength?: number;
  /**
   * Return target features after each append (see {@linkcode OnnxCausalLM.lastFeatures}): `true`
   * takes every `hidden_states.{i}` output the graph has, a list takes those layers (each must be
   * an output of the graph); the features of a position are the chosen layers' hidden states
   * concatenated in ascending layer order. Off: those outputs are dropped unread.
   * @default {false}
   */
  features?: boolean | readonly number[];
}

/** KV data: Float32Array, or for float16 graphs Float16Array (where the runtime has it) / Uint16Array bits. */
type KvData = Float32Array | Uint16Array;
const Float16 = (globalThis as unknown as { Float16Array?: new (n: number) => Uint16Array }).Float16Array ??
  Uint16Array;

function allocLike(src: KvData, n: number): KvData {
  return new (src.constructor as new (n: number) => KvData)(n);
}

const PAST = /^past_key_values\.(\d+)\.key$/;
const HIDDEN = /^hidden_states\.(\d+)$/;

/**
 * The form of a graph's `attention_mask`, read from its declared shape: rank 4 → "4d" (fed a 4D
 * mask on every call), declared without a shape (onnxruntime reports `[]`) → "any" (2D on plain
 * appends, 4D for trees: what `convertGgufToOnnx({ attentionMask: "any" })` writes), anything else
 * (rank 2, or no metadata) → "2d".
 */
function maskForm(shape: readonly (number | string)[] | undefined): "2d" | "4d" | "any" {
  if (!Array.isArray(shape)) return "2d";
  return shape.length === 4 ? "4d" : shape.length === 0 ? "any" : "2d";
}

/**
 * Rejected positions a cache may hold masked (see the class notes) before it is compacted: each
 * costs every later forward one masked key per layer and its share of the cache copies in and out
 * of onnxruntime, a compaction one copy of the whole cache.
 */
const MAX_HIDDEN = 32;

/**
 * int64 mask `[rows, 1, t, past + t]` with the causal rule: query s sees keys 0 … past + s, except
 * held positions p with `live[p] = 0`.
 */
function causalMask4d(rows: number, t: number, past: number, live?: Uint8Array): BigInt64Array {
  const total = past + t, out = new BigInt64Array(rows * t * total);
  for (let r = 0; r < rows; r++) {
    for (let q = 0; q < t; q++) {
      const at = (r * t + q) * total;
      out.fill(1n, at, at + past + q + 1);
      if (live) { for (let p = 0; p < past; p++) if (!live[p]) out[at + p] = 0n; }
    }
  }
  return out;
}

function float16ToFloat32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const h = src[i];
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    out[i] = e === 0
      ? sign * m * 2 ** -24
      : e === 31
      ? (m ? NaN : sign * Infinity)
      : sign * (1 + m / 1024) * 2 ** (e - 15);
  }
  return out;
}

/**
 * An ONNX causal LM holding a KV cache per row.
 *
 * Shapes: the cache holds, per layer, key and value tensors `[rows, kvHeads, length, headDim]`.
 * {@linkcode OnnxCausalLM.append} runs one forward with `input_ids [rows, T]`, `attention_mask`
 * all ones `[rows, length + T]`, `position_ids` length … length + T − 1 and the cache as
 * `past_key_values.*`; `present.*` becomes the new cache and it returns logits
 * `[rows, keep, vocab]` of the last `keep` positions.
 *
 * {@linkcode OnnxCausalLM.fork} is lazy: the cache stays one row until the next append, which
 * first runs the tokens all rows share (cut so no returned logits come from it) at batch 1, then
 * copies the cache row to every row and runs the rest. So the block decoder's first target call
 * (fork before the prompt was fed) does not process the prompt k times; it then costs two
 * forwards instead of one. Later blocks share nothing and cost one forward.
 *
 * Tree attention: when the graph's `attention_mask` takes a 4D `[batch, 1, sequence_length,
 * total_sequence_length]` mask (a graph converted with `attentionMask: "4d"` or `"any"`; detected
 * from the input's declared shape, see {@linkcode OnnxCausalLM.supportsTree}),
 * {@linkcode OnnxCausalLM.appendTree} scores a token tree as one row (position ids by depth, each
 * node seeing the cache and its ancestors) and {@linkcode OnnxCausalLM.keepTreePath} gathers the
 * accepted path's KV entries. A "4d" graph is fed a causal 4D mask on plain appends too; an "any"
 * graph the 2D one.
 *
 * Rollback without copies: on such a graph, a one-row {@linkcode OnnxCausalLM.select} and
 * {@linkcode OnnxCausalLM.keepTreePath} leave the dropped positions in the cache and mask them
 * (0 in `attention_mask`, 2D or 4D); position ids count the row's tokens only, so every forward
 * computes what it would on the compacted cache. Once more than 32 positions are masked, the cache
 * is compacted (one copy). Other graphs, and selecting one of several cache rows, copy the kept
 * positions at once.
 *
 * Runs are serialised per model; like every {@linkcode CausalModel}, the object is stateful, so
 * drive one generation at a time.
 *
 * @example Greedy next token of the bundled draft model
 * ```ts
 * import { OnnxCausalLM } from "./causal_lm.ts";
 * const folder = new URL("../../models/draft", import.meta.url);
 * const model = await OnnxCausalLM.load(folder, { backend: "wasm", numThreads: 1 });
 * const logits = await model.append([[1, 100, 200]], 1); // [1, 1, vocab]
 * let best = 0;
 * for (let i = 1; i < model.vocabSize; i++) if (logits[i] > logits[best]) best = i;
 * console.log(best);
 * await model.dispose();
 * ```
 * @example Fork, score rows, roll back to one row
 * ```ts
 * import { OnnxCausalLM } from "./causal_lm.ts";
 * const model = await OnnxCausalLM.load(new URL("../../models/draft", import.meta.url), { backend: "wasm", numThreads: 1 });
 * await model.append([[1, 5, 6, 7]], 1);
 * model.fork(3); // KV expand, no recompute
 * const logits = await model.append([[8, 9], [10, 11], [12, 13]], 2); // [3, 2, vocab]
 * model.select(1, 5); // keep row 1 with its first 5 tokens: 1 5 6 7 10
 * console.assert(model.rows === 1 && model.length === 5 && logits.length === 3 * 2 * model.vocabSize);
 * await model.dispose();
 * ```
 */
export class OnnxCausalLM implements CausalModel {
  /** The normalised config. */
  readonly config: ModelConfig;
  /** Number of token ids; logits rows have this many entries. */
  readonly vocabSize: number;
  /** Context limit in tokens. */
  readonly maxLength: number;
  /** Number of `session.run` calls so far (model forwards). */
  calls = 0;
  /** Time in `session.run` so far (feeding the cache in, the forward, reading logits and cache out), ms. */
  forwardMs = 0;
  /**
   * Time keeping the KV cache so far, ms: copying the row for a fork, cutting or gathering on a
   * rollback (select, keepTreePath), compacting.
   */
  kvMs = 0;
  readonly #session: OnnxSession;
  readonly #kvHeads: number;
  readonly #headDim: number;
  readonly #kvType: "float32" | "float16";
  readonly #pastNames: string[];
  readonly #presentNames: string[];
  readonly #positionIds: boolean;
  readonly #useCacheBranch: boolean;
  readonly #mask: "2d" | "4d" | "any";
  readonly #featureNames: string[];
  #past: Tensor[] = [];
  /** Features of the last session.run, `[rows, t, featureSize]`. */
  #runFeatures: Float32Array | undefined;
  /** Features of the last append / appendTree (see lastFeatures). */
  #features: Float32Array | undefined;
  /** The pending tree (its KV entries follow the held ones in #past), until keepTreePath. */
  #tree: { parents: Int32Array } | undefined;
  #cacheRows = 1;
  #rows = 1;
  /** Tokens held per row (logical). */
  #length = 0;
  /** Positions in the cache tensors (≥ #length: rejected positions may stay, masked). */
  #held = 0;
  /** Per held position, 1 when it is one of the row's tokens; undefined when all are. */
  #live: Uint8Array | undefined;
  #disposed = false;
  #busy = false;

  /**
   * Floats per position of {@linkcode OnnxCausalLM.lastFeatures} (hidden size × chosen layers);
   * undefined when the model was loaded without `features`.
   */
  readonly featureSize: number | undefined;
  /** The layers whose hidden states make up the features, ascending (empty without `features`). */
  readonly featureLayers: readonly number[];

  private constructor(session: OnnxSession, config: ModelConfig, maxLength: number, layers: number[]) {
    this.#session = session;
    this.featureLayers = Object.freeze(layers.slice());
    this.#featureNames = layers.map((i) => `hidden_states.${i}`);
    this.featureSize = layers.length > 0 ? layers.length * config.hiddenSize : undefined;
    this.config = config;
    this.vocabSize = config.vocabSize;
    this.maxLength = maxLength;
    this.#kvHeads = config.numKvHeads;
    this.#headDim = config.headDim;
    const type = session.input("past_key_values.0.key")?.type;
    this.#kvType = type === "float16" ? "float16" : "float32";
    this.#pastNames = [];
    this.#presentNames = [];
    for (let i = 0; i < config.numLayers; i++) {
      for (const kv of ["key", "value"]) {
        this.#pastNames.push(`past_key_values.${i}.${kv}`);
        this.#presentNames.push(`present.${i}.${kv}`);
      }
    }
    this.#positionIds = session.inputNames.includes("position_ids");
    this.#useCacheBranch = session.inputNames.includes("use_cache_branch");
    this.#mask = maskForm(session.input("attention_mask")?.shape);
    this.reset();
  }

  /**
   * Loads a model folder (HF / Optimum layout: config.json, optional generation_config.json,
   * onnx/model.onnx) and checks the config against the ONNX graph.
   *
   * @param source A local path, a file: / http(s): URL, an in-memory map of files, or a loader.
   * @param options Backend ("auto"), numThreads, dtype ("fp32"), merged, file, maxLength.
   * @returns The model, holding one empty row.
   * @throws {ModelNotFoundError} a missing folder, config.json or ONNX file.
   * @throws {InvalidModelError} invalid JSON, an unsupported model_type, corrupt ONNX bytes, a
   *   graph without the expected inputs/outputs, or a config that disagrees with the graph.
   * @throws {BackendUnavailableError} the backend cannot run here.
   * @throws {RangeError} an unknown backend or dtype, bad numThreads or maxLength.
   */
  static async load(source: ModelSource, options: OnnxCausalLMOptions = {}): Promise<OnnxCausalLM> {
    const folder = await openModelFolder(source);
    const config = await readModelConfig(folder);
    let maxLength = config.maxLength;
    if (options.maxLength !== undefined) {
      if (
        !Number.isInteger(options.maxLength) || options.maxLength < 1 || options.maxLength > config.maxLength
      ) {
        throw new RangeError(
          `Cannot load the model: maxLength must be an integer in [1, ${config.maxLength}], got ${options.maxLength}`,
        );
      }
      maxLength = options.maxLength;
    }
    const features = options.features ?? false;
    if (typeof features !== "boolean" && !Array.isArray(features)) {
      throw new TypeError(
        `Cannot load the model: features must be a boolean or a list of layers, got ${features}`,
      );
    }
    const session = await createOnnxSession(folder, options);
    let layers: number[];
    try {
      checkGraph(session, config);
      layers = featureLayers(session, config, features);
    } catch (error) {
      await session.release();
      throw error;
    }
    return new OnnxCausalLM(session, config, maxLength, layers);
  }

  /** The backend the session runs on. */
  get backend(): ResolvedBackend {
    return this.#session.backend;
  }

  /** The ONNX file in use, relative to the model folder. */
  get file(): string {
    return this.#session.file;
  }

  /** Rows (branches) currently held; all rows have the same `length`. */
  get rows(): number {
    return this.#rows;
  }

  /** Tokens held per row (the KV-cache length). */
  get length(): number {
    return this.#length;
  }

  /**
   * Whether {@linkcode OnnxCausalLM.appendTree} works: the graph's `attention_mask` takes the 4D
   * form (declared rank 4, or declared without a shape as the converter's `attentionMask: "any"`
   * writes it) and it has `position_ids`. Standard Optimum graphs (2D mask): false.
   */
  get supportsTree(): boolean {
    return this.#mask !== "2d" && this.#positionIds;
  }

  /** The form of `attention_mask` this model feeds: "2d", "4d" (always 4D) or "any" (4D for trees). */
  get attentionMask(): "2d" | "4d" | "any" {
    return this.#mask;
  }

  /**
   * The target features of every position the last {@linkcode OnnxCausalLM.append} (`[rows, T,
   * featureSize]`, all T appended positions; positions a lazy fork ran once at batch 1 repeated in
   * every row) or {@linkcode OnnxCausalLM.appendTree} (`[nodes, featureSize]`) fed: position j's
   * feature is the concatenation of `hidden_states.{i}[j]` over {@linkcode OnnxCausalLM.featureLayers}.
   *
   * @example Features of a prompt (a tiny converted Llama with two hidden-state outputs)
   * ```ts
   * import { OnnxCausalLM } from "./causal_lm.ts";
   * import { convertGgufToOnnx } from "../convert/mod.ts";
   * import { minimalConfig, tinyLlamaGguf } from "../convert/_testing.ts";
   * const dir = await Deno.makeTempDir();
   * await convertGgufToOnnx(tinyLlamaGguf(), `${dir}/tiny`, {
   *   dtypes: ["fp32"],
   *   hiddenStates: [0, 1],
   *   writeExtras: ({ folder, file }) =>
   *     Deno.writeTextFile(`${folder}/config.json`, JSON.stringify(minimalConfig(file))),
   * });
   * const model = await OnnxCausalLM.load(`${dir}/tiny`, { backend: "wasm", numThreads: 1, features: true });
   * await model.append([[1, 5, 6]], 1);
   * console.assert(model.lastFeatures().length === 3 * model.featureSize!);
   * await model.dispose();
   * await Deno.remove(dir, { recursive: true });
   * ```
   * @throws {RangeError} the model was loaded without `features`, or nothing was appended since the
   *   last reset.
   */
  lastFeatures(): Float32Array {
    if (this.featureSize === undefined) {
      throw new RangeError(
        "Cannot read target features: the model was loaded without features (load it with features: true or a list of layers)",
      );
    }
    if (!this.#features) {
      throw new RangeError("Cannot read target features: nothing was appended since the last reset");
    }
    return this.#features;
  }

  /** Drops everything (a pending tree too): one empty row (a zero-length cache). */
  reset(): void {
    this.#throwIfBusy("reset the model");
    this.#features = undefined;
    const h = this.#kvHeads, d = this.#headDim;
    this.#replaceCache(this.#pastNames.map(() => this.#kvTensor(this.#newKv(0), [1, h, 0, d])));
    this.#cacheRows = 1;
    this.#rows = 1;
    this.#length = 0;
    this.#held = 0;
    this.#live = undefined;
    this.#tree = undefined;
  }

  /**
   * Copies row 0 into `rows` rows (KV expand, no recompute; done lazily at the next append).
   *
   * @throws {RangeError} more than one row held, `rows` not an integer ≥ 1, or a tree pending.
   */
  fork(rows: number): void {
    this.#throwIfBusy("fork the model");
    this.#throwIfTree("fork the model");
    checkFork(this.#rows, rows);
    this.#rows = rows;
  }

  /**
   * Appends `tokens[r]` (all of length T) to row r and returns logits `[rows, keep, vocab]`: entry
   * j of row r is the next-token logits after appended token T − keep + j. One forward (two right
   * after a fork when the rows share leading tokens, see the class notes).
   *
   * @throws {RangeError} wrong row count, ragged or empty rows, ids outside [0, vocab), keep
   *   outside [1, T], length + T beyond {@linkcode OnnxCausalLM.maxLength}, or a tree pending.
   * @throws {Error} onnxruntime failed or the model was disposed; the cache is then unchanged.
   */
  async append(tokens: ArrayLike<number>[], keep: number): Promise<Float32Array> {
    this.#throwIfBusy("append tokens");
    this.#throwIfTree("append tokens");
    const t = checkAppend(tokens, keep, this);
    this.#features = undefined;
    this.#busy = true;
    try {
      return await this.#append(tokens, t, keep);
    } finally {
      this.#busy = false;
    }
  }

  async #append(tokens: ArrayLike<number>[], t: number, keep: number): Promise<Float32Array> {
    if (this.#cacheRows !== this.#rows) {
      // Lazy fork: run the shared leading tokens (none of whose logits are returned) at batch 1.
      let shared = 0;
      const first = tokens[0];
      outer: for (; shared < t - keep; shared++) {
        for (let r = 1; r < tokens.length; r++) if (tokens[r][shared] !== first[shared]) break outer;
      }
      const before = this.#length;
      let sharedFeatures: Float32Array | undefined;
      if (shared > 0) {
        await this.#forward([Array.prototype.slice.call(first, 0, shared)], 1, shared, 1);
        sharedFeatures = this.#runFeatures;
        tokens = tokens.map((row) => Array.prototype.slice.call(row, shared));
      }
      this.#expand(this.#rows);
      try {
        const logits = await this.#forward(tokens, this.#rows, t - shared, keep);
        if (sharedFeatures) {
          this.#features = joinFeatures(sharedFeatures, this.#features!, this.#rows, shared, t);
        }
        return logits;
      } catch (error) {
        this.#crop(0, before); // back to the state before this call: one cache row, `rows` rows
        throw error;
      }
    }
    return this.#forward(tokens, this.#rows, t, keep);
  }

  /**
   * Keeps only row `row`, cut to its first `length` tokens (rollback); other rows are dropped.
   *
   * @throws {RangeError} `row` not in [0, rows), `length` not an integer in [0, held length], or a
   *   tree pending.
   */
  select(row: number, length: number): void {
    this.#throwIfBusy("select a row");
    this.#throwIfTree("select a row");
    checkSelect(row, length, this);
    if (this.#cacheRows === 1 && this.supportsTree) this.#hide(length);
    else this.#crop(this.#cacheRows === 1 ? 0 : row, length);
    this.#rows = 1;
  }

  /**
   * Scores a token tree in one forward (tree attention; see {@linkcode CausalModel.appendTree}):
   * node i holds `tokens[i]`, `parents[i]` is −1 (a child of the last held token) or an earlier
   * node; node i runs at position `length + depth(i)` and sees the cache, its ancestors and
   * itself. Returns logits `[nodes, vocab]`, row i the next-token logits after node i. The nodes'
   * KV entries stay pending (`length` unchanged) until {@linkcode OnnxCausalLM.keepTreePath}.
   *
   * @example A pending token and two drafts sharing their first token, then the accepted path
   * ```ts
   * import { OnnxCausalLM } from "./causal_lm.ts";
   * import { convertGgufToOnnx } from "../convert/mod.ts";
   * import { minimalConfig, tinyLlamaGguf } from "../convert/_testing.ts";
   * const dir = await Deno.makeTempDir();
   * const folder = `${dir}/tiny`;
   * await convertGgufToOnnx(tinyLlamaGguf(), folder, {
   *   dtypes: ["fp32"],
   *   attentionMask: "any",
   *   writeExtras: ({ folder, file }) =>
   *     Deno.writeTextFile(`${folder}/config.json`, JSON.stringify(minimalConfig(file))),
   * });
   * const model = await OnnxCausalLM.load(folder, { backend: "wasm", numThreads: 1 });
   * await model.append([[1, 5, 6, 7]], 1);
   * console.assert(model.supportsTree);
   * //                                   p  a  b  c     parents: p ← a ← b, a ← c
   * const logits = await model.appendTree([9, 3, 4, 8], [-1, 0, 1, 1]); // [4, vocab]
   * model.keepTreePath([0, 1, 3]); // keeps 9 3 8
   * console.assert(model.length === 7 && logits.length === 4 * model.vocabSize);
   * await model.dispose();
   * await Deno.remove(dir, { recursive: true });
   * ```
   * @throws {RangeError} the graph takes no 4D mask ({@linkcode OnnxCausalLM.supportsTree} false),
   *   a tree already pending, more than one row, bad tokens or parents, or the deepest node beyond
   *   the context limit (see {@linkcode checkAppendTree}).
   * @throws {Error} onnxruntime failed or the model was disposed; the cache is then unchanged.
   */
  async appendTree(tokens: ArrayLike<number>, parents: ArrayLike<number>): Promise<Float32Array> {
    this.#throwIfBusy("append a tree");
    if (!this.supportsTree) {
      throw new RangeError(
        `Cannot append a tree: ${this.#session.file} takes no 4D attention_mask (supportsTree is false; ` +
          `convert with attentionMask "any" or "4d"), got a ${this.#mask} attention_mask${
            this.#positionIds ? "" : " and no position_ids"
          }`,
      );
    }
    this.#throwIfTree("append a tree");
    const depths = checkAppendTree(tokens, parents, this);
    this.#features = undefined;
    this.#busy = true;
    try {
      const n = tokens.length, past = this.#held, total = past + n, live = this.#live;
      const ids = new BigInt64Array(n), positions = new BigInt64Array(n);
      const mask = new BigInt64Array(n * total);
      for (let i = 0; i < n; i++) {
        ids[i] = BigInt(tokens[i]);
        positions[i] = BigInt(this.#length + depths[i]);
        mask.fill(1n, i * total, i * total + past);
        if (live) { for (let p = 0; p < past; p++) if (!live[p]) mask[i * total + p] = 0n; }
        for (let j = i; j !== -1; j = parents[j]) mask[i * total + past + j] = 1n;
      }
      const logits = await this.#run(ids, positions, mask, [1, 1, n, total], 1, n);
      this.#held = total;
      if (live) this.#live = grow(live, total);
      this.#features = this.#runFeatures;
      this.#tree = { parents: Int32Array.from(parents) };
      return logits;
    } finally {
      this.#busy = false;
    }
  }

  /**
   * Ends the pending tree: keeps the cache plus the KV entries of `nodes` (a root-to-node chain of
   * the tree, possibly empty; see {@linkcode CausalModel.keepTreePath}), gathered in that order;
   * `length` grows by `nodes.length`, the other nodes are dropped. No forward.
   *
   * @throws {RangeError} no tree pending, or `nodes` not a root-to-node chain of it.
   */
  keepTreePath(nodes: ArrayLike<number>): void {
    this.#throwIfBusy("keep a tree path");
    const tree = this.#tree;
    if (!tree) throw new RangeError("Cannot keep a tree path: no tree is pending (call appendTree first)");
    checkKeepTreePath(nodes, tree.parents);
    // The path's nodes are in tree order (a parent precedes its children): masking the other
    // nodes keeps the path as the row's next tokens, in order, without copying the cache.
    const start = performance.now();
    const n = tree.parents.length, held = this.#held, first = held - n;
    const live = this.#live ?? new Uint8Array(held).fill(1);
    live.fill(0, first, held);
    for (let j = 0; j < nodes.length; j++) live[first + nodes[j]] = 1;
    this.#live = live;
    this.#length += nodes.length;
    this.#tree = undefined;
    this.kvMs += performance.now() - start;
    this.#compactIfNeeded();
  }

  /**
   * Keeps cache row `from` cut to its first `length` tokens, as a one-row cache without masked
   * positions (a copy: the live positions gathered in runs).
   */
  #crop(from: number, length: number): void {
    if (this.#cacheRows === 1 && length === this.#length && this.#held === length) return;
    const start = performance.now();
    const h = this.#kvHeads, d = this.#headDim, held = this.#held, live = this.#live;
    // runs [at, end) of held positions to keep, in order
    const runs: number[] = [];
    for (let p = 0, kept = 0; p < held && kept < length;) {
      if (live && !live[p]) {
        p++;
        continue;
      }
      let end = p;
      while (end < held && kept < length && (!live || live[end])) {
        end++;
        kept++;
      }
      runs.push(p, end);
      p = end;
    }
    const next = this.#past.map((tensor) => {
      const src = tensor.data as KvData;
      const out = allocLike(src, h * length * d);
      for (let head = 0; head < h; head++) {
        const row = ((from * h + head) * held) * d;
        let to = head * length * d;
        for (let i = 0; i < runs.length; i += 2) {
          out.set(src.subarray(row + runs[i] * d, row + runs[i + 1] * d), to);
          to += (runs[i + 1] - runs[i]) * d;
        }
      }
      return this.#kvTensor(out, [1, h, length, d]);
    });
    this.#replaceCache(next);
    this.#cacheRows = 1;
    this.#length = length;
    this.#held = length;
    this.#live = undefined;
    this.kvMs += performance.now() - start;
  }

  /**
   * Cuts the one-row cache to its first `length` tokens by masking the positions after them (no
   * copy); compacts once more than {@linkcode MAX_HIDDEN} positions are masked.
   */
  #hide(length: number): void {
    if (length === this.#length) return;
    const start = performance.now();
    const held = this.#held;
    const live = this.#live ?? new Uint8Array(held).fill(1);
    let kept = 0, p = 0;
    for (; p < held && kept < length; p++) if (live[p]) kept++;
    live.fill(0, p, held);
    this.#live = live;
    this.#length = length;
    this.kvMs += performance.now() - start;
    this.#compactIfNeeded();
  }

  #compactIfNeeded(): void {
    if (this.#held - this.#length > MAX_HIDDEN) this.#crop(0, this.#length);
  }

  /** Releases the onnxruntime session and the cache; later calls throw. Idempotent. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    // a running append settles first (its session.run is queued before the release)
    this.#replaceCache([]);
    await this.#session.release();
  }

  /** Same as {@linkcode OnnxCausalLM.dispose}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.dispose();
  }

  #throwIfBusy(action: string): void {
    if (this.#disposed) {
      throw new Error(`Cannot ${action}: the model was disposed, got a call after dispose()`);
    }
    if (this.#busy) {
      throw new Error(
        `Cannot ${action}: an append is still running (one operation at a time per model), got a call before it settled`,
      );
    }
  }

  #throwIfTree(action: string): void {
    if (this.#tree) {
      throw new RangeError(
        `Cannot ${action}: a tree is pending (appendTree was called); end it with keepTreePath or reset first`,
      );
    }
  }

  #newKv(n: number): KvData {
    return this.#kvType === "float16" ? new Float16(n) : new Float32Array(n);
  }

  #kvTensor(data: KvData, dims: number[]): Tensor {
    return this.#session.tensor(this.#kvType, data, dims);
  }

  #replaceCache(next: Tensor[]): void {
    for (const tensor of this.#past) tensor.dispose();
    this.#past = next;
  }

  /** Copies the one cache row to `rows` rows. */
  #expand(rows: number): void {
    const start = performance.now();
    const h = this.#kvHeads, d = this.#headDim, len = this.#held;
    const next = this.#past.map((tensor) => {
      const src = tensor.data as KvData;
      const out = allocLike(src, rows * src.length);
      for (let r = 0; r < rows; r++) out.set(src, r * src.length);
      return this.#kvTensor(out, [rows, h, len, d]);
    });
    this.#replaceCache(next);
    this.#cacheRows = rows;
    this.kvMs += performance.now() - start;
  }

  async #forward(tokens: ArrayLike<number>[], rows: number, t: number, keep: number): Promise<Float32Array> {
    const past = this.#held, live = this.#live;
    const total = past + t;
    const ids = new BigInt64Array(rows * t);
    const positions = new BigInt64Array(rows * t);
    for (let r = 0; r < rows; r++) {
      const row = tokens[r];
      for (let i = 0; i < t; i++) {
        ids[r * t + i] = BigInt(row[i]);
        positions[r * t + i] = BigInt(this.#length + i);
      }
    }
    let all: Float32Array;
    if (this.#mask === "4d") {
      all = await this.#run(ids, positions, causalMask4d(rows, t, past, live), [rows, 1, t, total], rows, t);
    } else {
      // 2D: 1 for every key but the masked held positions (only a tree-capable graph has those)
      const mask = new BigInt64Array(rows * total).fill(1n);
      if (live) {
        for (let r = 0; r < rows; r++) for (let p = 0; p < past; p++) if (!live[p]) mask[r * total + p] = 0n;
      }
      all = await this.#run(ids, positions, mask, [rows, total], rows, t);
    }
    this.#length += t;
    this.#held = total;
    if (live) this.#live = grow(live, total);
    this.#features = this.#runFeatures;
    const v = this.vocabSize;
    if (keep === t) return all;
    const out = new Float32Array(rows * keep * v);
    for (let r = 0; r < rows; r++) {
      const at = (r * t + t - keep) * v;
      out.set(all.subarray(at, at + keep * v), r * keep * v);
    }
    return out;
  }

  /** The chosen `hidden_states.{i}` outputs of one run, concatenated per position: `[positions, featureSize]`. */
  #readFeatures(outputs: Record<string, Tensor>, positions: number): Float32Array {
    const names = this.#featureNames, h = this.config.hiddenSize, f = names.length * h;
    const out = new Float32Array(positions * f);
    for (let l = 0; l < names.length; l++) {
      const tensor = outputs[names[l]];
      const raw = tensor?.data as Float32Array | Uint16Array | undefined;
      if (!raw || raw.length !== positions * h) {
        throw new InvalidModelError(
          `Cannot read target features: ${names[l]} must hold ${positions}×${h} floats, got ${
            raw?.length ?? "none"
          }`,
        );
      }
      const data = raw instanceof Float32Array
        ? raw
        : raw instanceof Uint16Array
        ? float16ToFloat32(raw)
        : Float32Array.from(raw);
      for (let p = 0; p < positions; p++) out.set(data.subarray(p * h, (p + 1) * h), p * f + l * h);
    }
    return out;
  }

  /**
   * One `session.run` of `rows × t` new tokens after the cache: the present tensors (`length + t`
   * positions) become the cache (`#length` is the caller's to set); returns all logits
   * `[rows, t, vocab]`. On failure the cache is unchanged.
   */
  async #run(
    ids: BigInt64Array,
    positions: BigInt64Array,
    mask: BigInt64Array,
    maskDims: number[],
    rows: number,
    t: number,
  ): Promise<Float32Array> {
    const session = this.#session;
    const past = this.#held;
    const total = past + t;
    const feeds: Record<string, Tensor> = {
      input_ids: session.tensor("int64", ids, [rows, t]),
      attention_mask: session.tensor("int64", mask, maskDims),
    };
    if (this.#positionIds) feeds.position_ids = session.tensor("int64", positions, [rows, t]);
    if (this.#useCacheBranch) {
      feeds.use_cache_branch = session.tensor("bool", new Uint8Array([past > 0 ? 1 : 0]), [1]);
    }
    for (let i = 0; i < this.#pastNames.length; i++) feeds[this.#pastNames[i]] = this.#past[i];
    let outputs: Record<string, Tensor>;
    const start = performance.now();
    try {
      outputs = await session.run(feeds);
    } finally {
      this.forwardMs += performance.now() - start;
      for (const name of ["input_ids", "attention_mask", "position_ids", "use_cache_branch"]) {
        feeds[name]?.dispose();
      }
    }
    this.calls++;
    const present = this.#presentNames.map((name) => outputs[name]);
    const logitsTensor = outputs.logits;
    let features: Float32Array | undefined;
    try {
      features = this.featureSize === undefined ? undefined : this.#readFeatures(outputs, rows * t);
    } catch (error) {
      for (const p of present) p?.dispose();
      logitsTensor?.dispose();
      throw error;
    } finally {
      for (const [name, tensor] of Object.entries(outputs)) {
        if (name !== "logits" && !this.#presentNames.includes(name)) tensor.dispose();
      }
    }
    const expected = [rows, this.#kvHeads, total, this.#headDim].join(",");
    if (present.some((p) => p === undefined || p.dims.join(",") !== expected) || logitsTensor === undefined) {
      for (const p of present) p?.dispose();
      logitsTensor?.dispose();
      throw new InvalidModelError(
        `Cannot append tokens: the graph returned present tensors not shaped [${expected}], got [${
          present.find((p) => p && p.dims.join(",") !== expected)?.dims.join(",") ?? "missing"
        }]`,
      );
    }
    this.#replaceCache(present);
    this.#runFeatures = features;
    const raw = logitsTensor.data as Float32Array | Uint16Array;
    logitsTensor.dispose();
    return raw instanceof Float32Array ? raw : raw instanceof Uint16Array
      ? float16ToFloat32(raw) // float16 bits
      : Float32Array.from(raw); // Float16Array
  }
}

/** `live` extended to `n` entries, the new ones 1 (live). */
function grow(live: Uint8Array, n: number): Uint8Array {
  if (live.length >= n) return live;
  const out = new Uint8Array(n);
  out.set(live);
  out.fill(1, live.length);
  return out;
}

/** Features `[rows, t, f]`: the first `shared` positions (one row) repeated in every row, then `rest`. */
function joinFeatures(
  shared: Float32Array,
  rest: Float32Array,
  rows: number,
  sharedT: number,
  t: number,
): Float32Array {
  const f = shared.length / sharedT;
  const out = new Float32Array(rows * t * f);
  const restT = t - sharedT;
  for (let r = 0; r < rows; r++) {
    out.set(shared, r * t * f);
    out.set(rest.subarray(r * restT * f, (r + 1) * restT * f), (r * t + sharedT) * f);
  }
  return out;
}

/**
 * The layers of the `features` option, ascending, checked against the graph's `hidden_states.{i}`
 * outputs.
 *
 * @throws {InvalidModelError} a layer asked for is not an output of the graph, or `true` and the
 *   graph has none.
 * @throws {RangeError} a layer that is not an integer in [0, layers), or repeated.
 */
function featureLayers(
  session: OnnxSession,
  config: ModelConfig,
  features: boolean | readonly number[],
): number[] {
  if (features === false) return [];
  const present = session.outputNames.map((n) => HIDDEN.exec(n)).filter((m) => m !== null).map((m) =>
    Number(m[1])
  );
  const hint =
    "rebuild the graph with those outputs (the converter's hiddenStates option; for SmolLM2: deno task model:smollm2)";
  if (features === true) {
    if (present.length === 0) {
      throw new InvalidModelError(
        `Cannot use ${session.file} for target features: the graph has no hidden_states.{i} outputs; ${hint}, got outputs ${
          session.outputNames.join(", ")
        }`,
      );
    }
    return present.sort((a, b) => a - b);
  }
  for (const i of features) {
    if (!Number.isInteger(i) || i < 0 || i >= config.numLayers) {
      throw new RangeError(
        `Cannot load the model: features must list layers in [0, ${config.numLayers - 1}], got ${i}`,
      );
    }
    if (!present.includes(i)) {
      throw new InvalidModelError(
        `Cannot use ${session.file} for target features: the graph has no hidden_states.${i} output; ${hint}, got ${
          present.length ? present.map((p) => `hidden_states.${p}`).join(", ") : "no hidden_states outputs"
        }`,
      );
    }
  }
  if (new Set(features).size !== features.length) {
    throw new RangeError(`Cannot load the model: features repeats a layer, got ${features.join(", ")}`);
  }
  return [...features].sort((a, b) => a - b);
}

/** Checks the graph's inputs/outputs against the config; throws InvalidModelError naming both values. */
function checkGraph(session: OnnxSession, config: ModelConfig): void {
  const where = session.file;
  for (const name of ["input_ids", "attention_mask"]) {
    if (!session.inputNames.includes(name)) {
      throw new InvalidModelError(
        `Cannot use ${where}: the graph has no ${name} input, got inputs ${session.inputNames.join(", ")}`,
      );
    }
  }
  if (!session.outputNames.includes("logits")) {
    throw new InvalidModelError(
      `Cannot use ${where}: the graph has no logits output, got outputs ${session.outputNames.join(", ")}`,
    );
  }
  const layers = session.inputNames.filter((n) => PAST.test(n)).length;
  if (layers === 0) {
    throw new InvalidModelError(
      `Cannot use ${where}: the graph has no past_key_values.*.key inputs (exported without a KV cache?), got inputs ${
        session.inputNames.join(", ")
      }`,
    );
  }
  if (layers !== config.numLayers) {
    throw new InvalidModelError(
      `Cannot use ${where}: config.json says ${config.numLayers} layers but the graph has ${layers} past_key_values.*.key inputs, got ${config.numLayers} vs ${layers}`,
    );
  }
  for (let i = 0; i < layers; i++) {
    for (const kv of ["key", "value"]) {
      if (!session.inputNames.includes(`past_key_values.${i}.${kv}`)) {
        throw new InvalidModelError(`Cannot use ${where}: the graph has no past_key_values.${i}.${kv} input`);
      }
      if (!session.outputNames.includes(`present.${i}.${kv}`)) {
        throw new InvalidModelError(`Cannot use ${where}: the graph has no present.${i}.${kv} output`);
      }
    }
  }
  const shape = session.input("past_key_values.0.key")?.shape;
  if (shape) {
    if (typeof shape[1] === "number" && shape[1] !== config.numKvHeads) {
      throw new InvalidModelError(
        `Cannot use ${where}: config.json gives ${config.numKvHeads} key/value heads but the graph's past_key_values.0.key has ${
          shape[1]
        }, got ${config.numKvHeads} vs ${shape[1]}`,
      );
    }
    if (typeof shape[3] === "number" && shape[3] !== config.headDim) {
      throw new InvalidModelError(
        `Cannot use ${where}: config.json gives head size ${config.headDim} but the graph's past_key_values.0.key has ${
          shape[3]
        }, got ${config.headDim} vs ${shape[3]}`,
      );
    }
  }
  const type = session.input("past_key_values.0.key")?.type;
  if (type !== undefined && type !== "float32" && type !== "float16") {
    throw new InvalidModelError(
      `Cannot use ${where}: past_key_values must be float32 or float16, got ${type}`,
    );
  }
  const logits = session.output("logits")?.shape;
  if (logits && typeof logits[2] === "number" && logits[2] !== config.vocabSize) {
    throw new InvalidModelError(
      `Cannot use ${where}: config.json gives vocab_size ${config.vocabSize} but the graph's logits have ${
        logits[2]
      } entries, got ${config.vocabSize} vs ${logits[2]}`,
    );
  }
}
