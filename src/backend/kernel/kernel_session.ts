/**
 * The `kernel` backend: a session that runs a GPT-2 or Llama ONNX graph's forward pass on spectr's
 * own WebAssembly kernel (`wasm/src/lm.rs`) instead of onnxruntime. It reads the weights out of
 * the ONNX file with its family's reader ({@linkcode readOnnxGraph}; families/: one
 * {@linkcode KernelFamily} per config family, its reader and forward recipe), copies them once into
 * a WebAssembly memory of its own, and answers `run` with the same inputs and outputs the graph
 * has (`input_ids`, `attention_mask` 2D or 4D, `position_ids`, `past_key_values.*` → `logits`,
 * `present.*`, and `hidden_states.{i}` where the graph outputs them: the residual stream after
 * layer i, target features), so {@linkcode OnnxCausalLM} drives it unchanged, tree attention included.
 *
 * Why: onnxruntime-web's 14 MB runtime module costs 130–300 MiB of compiled code and compiler
 * memory in a V8 process, which alone breaks an edge function's 256 MB budget; this backend's
 * module (the kernel, shared with verification) is 122 KB: the bundled pair peaks at 195 MiB RSS on
 * it, 405–428 on onnxruntime-web (docs/deploy.md). It supports what our models use: fp32 (and fp16,
 * widened) `MatMul` weights of the two families, a draft's vocabulary subset, and our converter's
 * 8-bit graphs (`MatMulNBits`, kept 8-bit: `Q8Weight` in q8_weight.ts); other graphs (4-bit, other
 * architectures) get an InvalidModelError naming what is missing. Single-threaded; each `run`
 * computes on the calling thread (the session yields to the event loop between forwards, as on wasm).
 *
 * The session is the mechanics every family shares: feeds checked, one {@linkcode ForwardPass}
 * (ops.ts: the shared ops, the KV cache) per `run` handed to the family's recipe, outputs
 * returned; it holds no family's arithmetic.
 *
 * @module
 */
import type { ModelConfig } from "../../model/config.ts";
import { InvalidModelError } from "../../model/errors.ts";
import { readOnnxGraph } from "../../onnx/graph.ts";
import type { BackendSession, Tensor, TensorInput, TensorType, ValueMetadata } from "../types.ts";
import { kernelWasmUrl, readBytes } from "../../kernel/wasm_load.ts";
import { bindExports } from "../../kernel/wasm_abi.ts";
import { type AnyKernelFamily, type KernelFamily, kernelFamily, type KernelModel } from "./families/mod.ts";
import { ForwardPass, LinearMemory, type PassShape } from "./ops.ts";
import { adoptImage, readImage } from "./file_image.ts";
import type { ModelLoader } from "../../model/loader.ts";

/** A CPU tensor with the fields the model layer reads (onnxruntime-common's shape of one). */
export class KernelTensor implements Tensor {
  /** Always "cpu". */
  readonly location = "cpu";
  /** Element type. */
  readonly type: string;
  /** The elements. */
  readonly data: Float32Array | BigInt64Array | Uint8Array | Uint16Array;
  /** Dims. */
  readonly dims: readonly number[];
  /** A tensor over `data` (not copied). */
  constructor(
    type: string,
    data: Float32Array | BigInt64Array | Uint8Array | Uint16Array,
    dims: readonly number[],
  ) {
    this.type = type;
    this.data = data;
    this.dims = [...dims];
  }
  /** Element count. */
  get size(): number {
    return this.data.length;
  }
  /** Nothing to release (the data is a JS array). */
  dispose(): void {}
}

let modulePromise: Promise<WebAssembly.Module> | undefined;

function kernelModule(): Promise<WebAssembly.Module> {
  if (modulePromise === undefined) {
    modulePromise = readBytes(kernelWasmUrl()).then((b) => WebAssembly.compile(b));
    modulePromise.catch(() => (modulePromise = undefined));
  }
  return modulePromise;
}

/**
 * A session over spectr's kernel for one GPT-2 or Llama ONNX file (see the module doc).
 *
 * @example The bundled draft on the kernel backend
 * ```ts
 * import { KernelSession } from "./kernel_session.ts";
 * import { readModelConfig } from "../../model/config.ts";
 * import { openModelFolder } from "../../model/loader.ts";
 * const folder = await openModelFolder(new URL("../../../models/draft", import.meta.url));
 * const session = await KernelSession.create(await folder.readBytes("onnx/model.onnx"), await readModelConfig(folder), "onnx/model.onnx");
 * console.assert(session.outputNames[0] === "logits");
 * await session.release();
 * ```
 */
/** The family's reader over an ONNX file's bytes (errors name the file and the backend). */
function readFamily(
  bytes: Uint8Array,
  config: ModelConfig,
  file: string,
  family?: AnyKernelFamily,
): { chosen: AnyKernelFamily; weights: unknown } {
  try {
    const chosen = family ?? kernelFamily(config.family);
    return { chosen, weights: chosen.read(readOnnxGraph(bytes), config) };
  } catch (cause) {
    if (cause instanceof InvalidModelError) {
      throw new InvalidModelError(`Cannot load ${file} on the kernel backend: ${cause.message}`, { cause });
    }
    throw cause;
  }
}

export class KernelSession implements BackendSession {
  /** Graph input names, in order. */
  readonly inputNames: readonly string[];
  /** Graph output names, in order. */
  readonly outputNames: readonly string[];
  /** Input metadata: `attention_mask` is declared without a shape (2D or 4D, tree attention). */
  readonly inputMetadata: readonly ValueMetadata[];
  /** Output metadata. */
  readonly outputMetadata: readonly ValueMetadata[];
  /** Bytes of weights held in the kernel's memory. */
  readonly weightBytes: number;
  readonly #mem: LinearMemory;
  readonly #shape: PassShape;
  readonly #family: AnyKernelFamily;
  /** The family's weights in the kernel's memory (read by its recipe only). */
  readonly #model: KernelModel;
  #released = false;

  private constructor(
    mem: LinearMemory,
    config: ModelConfig,
    family: AnyKernelFamily,
    weights: unknown,
    imageBytes = 0,
  ) {
    this.#mem = mem;
    this.#family = family;
    this.#shape = {
      d: config.hiddenSize,
      heads: config.numHeads,
      kvHeads: config.numKvHeads,
      hd: config.headDim,
      vocab: config.vocabSize,
    };
    const s = this.#shape;
    const start = mem.alloc(0);
    this.#model = family.place(mem, weights, config);
    this.weightBytes = imageBytes + mem.alloc(0) - start;
    mem.keep();
    const names: string[] = [];
    for (let i = 0; i < config.numLayers; i++) {
      names.push(`past_key_values.${i}.key`, `past_key_values.${i}.value`);
    }
    this.inputNames = ["input_ids", "attention_mask", "position_ids", ...names];
    const hiddenNames = this.#model.hiddenStates.map((i) => `hidden_states.${i}`);
    this.outputNames = [
      "logits",
      ...names.map((n) => n.replace("past_key_values", "present")),
      ...hiddenNames,
    ];
    const kv = (name: string) => ({
      name,
      type: "float32",
      shape: ["batch_size", s.kvHeads, "past_sequence_length", s.hd],
    });
    this.inputMetadata = [
      { name: "input_ids", type: "int64", shape: ["batch_size", "sequence_length"] },
      { name: "attention_mask", type: "int64", shape: [] },
      { name: "position_ids", type: "int64", shape: ["batch_size", "sequence_length"] },
      ...names.map(kv),
    ];
    this.outputMetadata = [
      { name: "logits", type: "float32", shape: ["batch_size", "sequence_length", s.vocab] },
      ...this.outputNames.slice(1, 1 + names.length).map(kv),
      ...hiddenNames.map((name) => ({
        name,
        type: "float32",
        shape: ["batch_size", "sequence_length", s.d],
      })),
    ];
  }

  /**
   * Reads the weights of an ONNX file with its family's reader and copies them into a new kernel
   * instance.
   *
   * @param bytes The ONNX file.
   * @param config The model's config (family and sizes).
   * @param file The file's name, for messages.
   * @param family The family whose reader and recipe to use; by default the registry's for
   *   `config.family` (families/mod.ts).
   * @throws {InvalidModelError} no family of that name, or the graph is not one its reader
   *   supports (a GPT-2 / Llama graph of the config's sizes).
   */
  static async create<W, M extends KernelModel>(
    bytes: Uint8Array,
    config: ModelConfig,
    file: string,
    family?: KernelFamily<W, M>,
  ): Promise<KernelSession> {
    const { chosen, weights } = readFamily(bytes, config, file, family);
    const instance = await WebAssembly.instantiate(await kernelModule(), {});
    return new KernelSession(new LinearMemory(bindExports(instance)), config, chosen, weights);
  }

  /**
   * Reads an ONNX file of a folder straight into a new kernel instance's memory (its image,
   * file_image.ts: piece by piece where the loader can) and places its family's weights there: the
   * 8-bit codes are used where they lie, so the file is never held twice. What the backend's
   * `createSession` does.
   *
   * @param folder The model folder.
   * @param file The ONNX file's name in it.
   * @param config The model's config (family and sizes).
   * @throws {InvalidModelError} no family of that name, or the graph is not one its reader supports.
   * @throws {ModelNotFoundError} the file does not exist.
   */
  static async load(folder: ModelLoader, file: string, config: ModelConfig): Promise<KernelSession> {
    const mem = new LinearMemory(bindExports(await WebAssembly.instantiate(await kernelModule(), {})));
    const image = await readImage(folder, file, mem);
    const family = readFamily(image, config, file);
    const adopted = adoptImage(family.weights, image);
    mem.adopt(adopted.codes);
    return new KernelSession(mem, config, family.chosen, family.weights, adopted.bytes);
  }

  /**
   * One forward: `feeds` as onnxruntime would take them; returns `logits [rows, t, vocab]`,
   * `present.*` `[rows, kvHeads, past + t, headDim]` and, where the graph has them,
   * `hidden_states.{i}` `[rows, t, hidden]` (the residual stream after layer i of each fed row and
   * position). As onnxruntime's `run(feeds, fetches)`: with `fetches` (output names, or a record
   * keyed by them) only those outputs are copied out and returned.
   *
   * @throws {Error} the session was released.
   * @throws {RangeError} feeds missing or shaped inconsistently, or a fetch names no output.
   */
  run(
    feeds: Record<string, Tensor>,
    fetches?: readonly string[] | Record<string, unknown>,
  ): Promise<Record<string, KernelTensor>> {
    try {
      let want: Set<string> | undefined;
      if (fetches !== undefined) {
        want = new Set(Array.isArray(fetches) ? fetches : Object.keys(fetches));
        for (const name of want) {
          if (!this.outputNames.includes(name)) {
            throw new RangeError(
              `Cannot run the model: "${name}" is not an output (outputs: ${this.outputNames.join(", ")})`,
            );
          }
        }
      }
      return Promise.resolve(this.#forward(feeds, want));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** A CPU tensor over `data` (not copied; booleans become a Uint8Array of 0 / 1). */
  tensor(type: TensorType, data: TensorInput, dims: readonly number[]): KernelTensor {
    return new KernelTensor(type, Array.isArray(data) ? Uint8Array.from(data, Number) : data, dims);
  }

  /** Drops the weights (the instance and its memory become garbage). */
  release(): Promise<void> {
    this.#released = true;
    return Promise.resolve();
  }

  #forward(feeds: Record<string, Tensor>, want?: Set<string>): Record<string, KernelTensor> {
    if (this.#released) throw new Error("Cannot run the model: the kernel session was released");
    const s = this.#shape, mem = this.#mem;
    const ids = feeds.input_ids, mask = feeds.attention_mask, positions = feeds.position_ids;
    if (!ids || !mask) {
      throw new RangeError("Cannot run the model: input_ids and attention_mask are required");
    }
    const [rows, t] = ids.dims;
    const past = feeds["past_key_values.0.key"]?.dims[2] ?? 0;
    const total = past + t, m = rows * t;
    const is4d = mask.dims.length === 4;
    if (is4d ? mask.dims.join() !== [rows, 1, t, total].join() : mask.dims.join() !== [rows, total].join()) {
      throw new RangeError(
        `Cannot run the model: attention_mask must be [${rows}, ${total}] or [${rows}, 1, ${t}, ${total}], got [${mask.dims}]`,
      );
    }
    const posData = positions ? positions.data as BigInt64Array : undefined;
    const pos = new Int32Array(m);
    for (let i = 0; i < m; i++) pos[i] = posData ? Number(posData[i]) : past + (i % t);
    mem.release();
    try {
      const pass = new ForwardPass(mem, s, {
        rows,
        t,
        past,
        ids: ids.data as BigInt64Array,
        pos,
        mask,
        is4d,
        pastKv: (layer, kind) => feeds[`past_key_values.${layer}.${kind}`]?.data as Float32Array | undefined,
        want,
        hiddenStates: this.#model.hiddenStates,
      });
      this.#family.forward(pass, this.#model);
      const out: Record<string, KernelTensor> = {};
      if (pass.logits) out.logits = new KernelTensor("float32", pass.logits, [rows, t, s.vocab]);
      for (const [name, data] of Object.entries(pass.presents)) {
        out[name] = new KernelTensor("float32", data, [rows, s.kvHeads, total, s.hd]);
      }
      for (const [name, data] of Object.entries(pass.hiddenStates)) {
        out[name] = new KernelTensor("float32", data, [rows, t, s.d]);
      }
      return out;
    } finally {
      mem.release();
    }
  }
}
