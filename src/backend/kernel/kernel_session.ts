/**
 * The `kernel` backend: a session that runs a GPT-2 or Llama ONNX graph's forward pass on spectr's
 * own WebAssembly kernel (`wasm/src/lm.rs`) instead of onnxruntime. It reads the weights out of
 * the ONNX file ({@linkcode readOnnxGraph}, {@linkcode transformerWeights}), copies them once into
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
 * @module
 */
import type { ModelConfig } from "../../model/config.ts";
import { InvalidModelError } from "../../model/errors.ts";
import { readOnnxGraph } from "../../onnx/graph.ts";
import type { BackendSession, Tensor, TensorInput, TensorType, ValueMetadata } from "../types.ts";
import { converterQ8Weights, isConverterQ8Graph } from "./q8_graph_weights.ts";
import { type Gpt2Weights, type LlamaWeights, transformerWeights } from "./transformer_weights.ts";
import { kernelWasmUrl, readBytes } from "../../kernel/wasm_load.ts";
import { isQ8, type LinearWeight, Q8_BLOCK } from "./q8_weight.ts";
import { bindExports, type KernelExports } from "../../kernel/wasm_abi.ts";

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

/** A WebAssembly memory with a bump allocator: weights first (kept), then per-call scratch. */
class LinearMemory {
  readonly x: KernelExports;
  #top: number;
  #mark = 0;
  #f32!: Float32Array;
  #u8!: Uint8Array;

  constructor(x: KernelExports) {
    this.x = x;
    this.#top = (x.spectr_heap_base() + 15) & ~15;
    this.#views();
  }

  #views(): void {
    this.#f32 = new Float32Array(this.x.memory.buffer);
    this.#u8 = new Uint8Array(this.x.memory.buffer);
  }

  /** `bytes` bytes, 16-aligned, growing the memory when needed; returns the byte offset. */
  alloc(bytes: number): number {
    const at = this.#top;
    const end = at + ((bytes + 15) & ~15);
    const have = this.x.memory.buffer.byteLength;
    if (end > have) {
      if (end > 2 ** 32 - 65536) {
        throw new RangeError(`Cannot allocate ${bytes} bytes in the kernel's memory: it holds at most 4 GiB`);
      }
      this.x.memory.grow(Math.ceil((end - have) / 65536));
      this.#views();
    }
    this.#top = end;
    return at;
  }

  /** A copy of `data` in the memory; returns its byte offset. */
  put(data: Float32Array): number {
    const at = this.alloc(data.length * 4);
    this.f32.set(data, at >> 2);
    return at;
  }

  /** Everything allocated so far is kept; {@linkcode LinearMemory.release} frees what comes after. */
  keep(): void {
    this.#mark = this.#top;
  }

  /** Frees everything allocated since {@linkcode LinearMemory.keep}. */
  release(): void {
    this.#top = this.#mark;
  }

  /** The memory as f32 (refreshed after a grow). */
  get f32(): Float32Array {
    if (this.#f32.buffer !== this.x.memory.buffer) this.#views();
    return this.#f32;
  }

  /** The memory as bytes (refreshed after a grow). */
  get u8(): Uint8Array {
    if (this.#u8.buffer !== this.x.memory.buffer) this.#views();
    return this.#u8;
  }
}

/** Where a linear weight lies in the kernel's memory: float32 `[k, n]` at `f32`, or 8-bit blocks. */
interface LinearAt {
  /** Byte offset of the float32 weight; 0 when quantized. */
  f32: number;
  /** Byte offsets of the 8-bit form (0 when float32): codes `[n, k]`, scales and mins `[n, k/32]`. */
  codes: number;
  scales: number;
  mins: number;
}

/** Byte offsets of the quantized rows an 8-bit layer reads (`spectr_lm_quantize_rows`' outputs). */
interface Q8Scratch {
  xq: number;
  xs: number;
  xsum: number;
}

/** Byte offsets of one layer's weights in the kernel's memory (0 = absent). */
interface LayerAt {
  norm1: number;
  norm1Bias: number;
  norm2: number;
  norm2Bias: number;
  /** GPT-2: fused q|k|v [d, 3d]; Llama: q [d, H·hd]. */
  q: LinearAt;
  qBias: number;
  k: LinearAt;
  kBias: number;
  v: LinearAt;
  vBias: number;
  o: LinearAt;
  oBias: number;
  /** GPT-2: c_fc; Llama: gate. */
  fc: LinearAt;
  fcBias: number;
  up: LinearAt;
  down: LinearAt;
  downBias: number;
}

/** The architecture numbers a forward needs. */
interface Shape {
  family: "gpt2" | "llama";
  layers: number;
  d: number;
  heads: number;
  kvHeads: number;
  hd: number;
  inner: number;
  vocab: number;
  /** A vocabulary subset (embedding rows and head rows ≠ token ids), or undefined. */
  subset?: LlamaWeights["vocabSubset"];
  eps: number;
  rope: "half" | "interleaved";
  /** RoPE inverse frequencies [hd / 2] as the graph holds them (Llama; both weight readers check the length). */
  ropeInvFreq?: Float32Array;
  maxPositions: number;
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
  readonly #s: Shape;
  /** The token embedding `[vocab, d]`: float32, or 8-bit blocks (one output per token). */
  readonly #embed: LinearAt;
  readonly #positions: number;
  readonly #layers: LayerAt[];
  readonly #normF: number;
  readonly #normFBias: number;
  /** The output head: `vocabMajor` float32 `[vocab, d]` (a tied embedding), else `[d, vocab]`; or 8-bit blocks. */
  readonly #head: { lin: LinearAt; vocabMajor: boolean };
  /** Layers whose residual stream the graph outputs as `hidden_states.{i}`, ascending. */
  readonly #hiddenStates: readonly number[];
  #released = false;

  private constructor(mem: LinearMemory, s: Shape, w: Gpt2Weights | LlamaWeights) {
    this.#mem = mem;
    this.#s = s;
    this.#hiddenStates = w.hiddenStates ?? [];
    const put = (x: Float32Array | undefined) => (x === undefined ? 0 : mem.put(x));
    const none: LinearAt = { f32: 0, codes: 0, scales: 0, mins: 0 };
    const lin = (x: LinearWeight | undefined): LinearAt => {
      if (x === undefined) return none;
      if (!isQ8(x)) return { ...none, f32: mem.put(x) };
      const codes = mem.alloc(x.codes.length);
      const u8 = mem.u8, src = x.codes;
      for (let i = 0; i < src.length; i++) u8[codes + i] = src[i] ^ 0x80; // code − 128 as int8
      return { f32: 0, codes, scales: mem.put(x.scales), mins: x.mins ? mem.put(x.mins) : 0 };
    };
    const start = mem.alloc(0);
    if (w.family === "gpt2") {
      this.#embed = lin(w.wte);
      this.#positions = put(w.wpe);
      this.#layers = w.layers.map((l) => ({
        norm1: put(l.ln1.weight),
        norm1Bias: put(l.ln1.bias),
        norm2: put(l.ln2.weight),
        norm2Bias: put(l.ln2.bias),
        q: lin(l.qkv.weight),
        qBias: put(l.qkv.bias),
        k: none,
        kBias: 0,
        v: none,
        vBias: 0,
        o: lin(l.proj.weight),
        oBias: put(l.proj.bias),
        fc: lin(l.fc.weight),
        fcBias: put(l.fc.bias),
        up: none,
        down: lin(l.fcProj.weight),
        downBias: put(l.fcProj.bias),
      }));
      this.#normF = put(w.lnf.weight);
      this.#normFBias = put(w.lnf.bias);
      this.#head = w.head.weight === w.wte
        ? { lin: this.#embed, vocabMajor: true }
        : { lin: lin(w.head.weight), vocabMajor: w.head.layout === "vocab-major" };
    } else {
      this.#embed = lin(w.embed as LinearWeight);
      this.#positions = 0;
      this.#layers = w.layers.map((l) => ({
        norm1: put(l.inputNorm),
        norm1Bias: 0,
        norm2: put(l.postNorm),
        norm2Bias: 0,
        q: lin(l.q as LinearWeight),
        qBias: put(l.qBias),
        k: lin(l.k as LinearWeight),
        kBias: put(l.kBias),
        v: lin(l.v as LinearWeight),
        vBias: put(l.vBias),
        o: lin(l.o as LinearWeight),
        oBias: 0,
        fc: lin(l.gate as LinearWeight),
        fcBias: 0,
        up: lin(l.up as LinearWeight),
        down: lin(l.down as LinearWeight),
        downBias: 0,
      }));
      this.#normF = put(w.norm);
      this.#normFBias = 0;
      this.#head = (w.head.weight as LinearWeight) === (w.embed as LinearWeight)
        ? { lin: this.#embed, vocabMajor: true }
        : { lin: lin(w.head.weight as LinearWeight), vocabMajor: w.head.layout === "vocab-major" };
    }
    this.weightBytes = mem.alloc(0) - start;
    mem.keep();
    const names: string[] = [];
    for (let i = 0; i < s.layers; i++) names.push(`past_key_values.${i}.key`, `past_key_values.${i}.value`);
    this.inputNames = ["input_ids", "attention_mask", "position_ids", ...names];
    const hiddenNames = this.#hiddenStates.map((i) => `hidden_states.${i}`);
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
   * Reads the weights of an ONNX file and copies them into a new kernel instance.
   *
   * @param bytes The ONNX file.
   * @param config The model's config (family and sizes).
   * @param file The file's name, for messages.
   * @throws {InvalidModelError} the graph is not a supported GPT-2 / Llama graph.
   */
  static async create(
    bytes: Uint8Array,
    config: ModelConfig,
    file: string,
  ): Promise<KernelSession> {
    let weights: Gpt2Weights | LlamaWeights;
    let subset: LlamaWeights["vocabSubset"];
    try {
      const graph = readOnnxGraph(bytes);
      weights = isConverterQ8Graph(graph)
        ? converterQ8Weights(graph, config) as unknown as LlamaWeights // Q8Weight where LlamaWeights has Float32Array
        : transformerWeights(graph, config);
      subset = weights.family === "llama" ? weights.vocabSubset : undefined;
    } catch (cause) {
      if (cause instanceof InvalidModelError) {
        throw new InvalidModelError(`Cannot load ${file} on the kernel backend: ${cause.message}`, { cause });
      }
      throw cause;
    }
    const d = config.hiddenSize;
    const outputs = (w: LinearWeight) => (isQ8(w) ? w.n : w.length / d);
    const inner = outputs(
      weights.family === "gpt2" ? weights.layers[0].fc.weight : weights.layers[0].gate as LinearWeight,
    );
    const s: Shape = {
      family: weights.family,
      layers: config.numLayers,
      d,
      heads: config.numHeads,
      kvHeads: config.numKvHeads,
      hd: config.headDim,
      inner,
      vocab: config.vocabSize,
      subset,
      eps: weights.eps, // read from the graph by both weight readers
      rope: weights.family === "llama" ? weights.rope : "half",
      ropeInvFreq: weights.family === "llama" ? weights.ropeInvFreq : undefined,
      maxPositions: weights.family === "gpt2" ? weights.wpe.length / d : Infinity,
    };
    if (weights.family === "gpt2" && weights.activation !== "gelu_tanh") {
      throw new InvalidModelError(
        `Cannot load ${file} on the kernel backend: only GPT-2's tanh GELU is implemented, got ${weights.activation}`,
      );
    }
    const instance = await WebAssembly.instantiate(await kernelModule(), {});
    return new KernelSession(new LinearMemory(bindExports(instance)), s, weights);
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
    const s = this.#s, mem = this.#mem, x = mem.x;
    const ids = feeds.input_ids, mask = feeds.attention_mask, positions = feeds.position_ids;
    if (!ids || !mask) {
      throw new RangeError("Cannot run the model: input_ids and attention_mask are required");
    }
    const [rows, t] = ids.dims;
    const past = feeds["past_key_values.0.key"]?.dims[2] ?? 0;
    const total = past + t, m = rows * t, d = s.d, hd = s.hd;
    const qWidth = s.heads * hd, kvWidth = s.kvHeads * hd;
    const is4d = mask.dims.length === 4;
    if (is4d ? mask.dims.join() !== [rows, 1, t, total].join() : mask.dims.join() !== [rows, total].join()) {
      throw new RangeError(
        `Cannot run the model: attention_mask must be [${rows}, ${total}] or [${rows}, 1, ${t}, ${total}], got [${mask.dims}]`,
      );
    }
    const idData = ids.data as BigInt64Array;
    const posData = positions ? positions.data as BigInt64Array : undefined;
    const pos = new Int32Array(m);
    for (let i = 0; i < m; i++) pos[i] = posData ? Number(posData[i]) : past + (i % t);
    mem.release();
    try {
      const a = (n: number) => mem.alloc(n * 4);
      const hidden = a(m * d), normed = a(m * d), attnOut = a(m * qWidth), proj = a(m * d);
      const qkv = s.family === "gpt2" ? a(m * 3 * d) : 0;
      const q = s.family === "gpt2" ? 0 : a(m * qWidth);
      const kNew = s.family === "gpt2" ? 0 : a(m * kvWidth), vNew = s.family === "gpt2" ? 0 : a(m * kvWidth);
      const fc = a(m * s.inner), up = s.family === "llama" ? a(m * s.inner) : 0;
      const cacheLen = s.kvHeads * total * hd;
      const kCache = a(rows * cacheLen), vCache = a(rows * cacheLen);
      const maskAt = mem.alloc(t * total), scores = a(total);
      const logits = a(m * s.vocab);
      // scratch reused by every layer: GPT-2's packed queries of one row, the 8-bit layers' quantized
      // rows (the widest input is the MLP's); allocated once per forward, since the memory never shrinks
      const packedQ = s.family === "gpt2" ? a(t * d) : 0;
      const widest = Math.max(d, qWidth, s.inner);
      const q8 = {
        xq: mem.alloc(m * widest * 2),
        xs: a(m * Math.ceil(widest / Q8_BLOCK)),
        xsum: a(m * Math.ceil(widest / Q8_BLOCK)),
      };
      // embeddings (+ learned positions)
      {
        const f = mem.f32, h = hidden >> 2;
        for (let i = 0; i < m; i++) {
          const id = Number(idData[i]);
          if (!(id >= 0 && id < s.vocab)) {
            throw new RangeError(
              `Cannot run the model: input id ${id} is outside the vocabulary [0, ${s.vocab})`,
            );
          }
          this.#embedRow(s.subset ? s.subset.inMap[id] : id, h + i * d);
          if (this.#positions) {
            const p = pos[i];
            if (!(p >= 0 && p < s.maxPositions)) {
              throw new RangeError(`Cannot run the model: position ${p} is outside [0, ${s.maxPositions})`);
            }
            const pe = (this.#positions >> 2) + p * d;
            for (let j = 0; j < d; j++) f[h + i * d + j] += f[pe + j];
          }
        }
      }
      const rope = s.family === "llama" ? this.#ropeTables(pos) : undefined;
      const presents: Record<string, KernelTensor> = {};
      const hiddenOut: Record<string, KernelTensor> = {};
      const wanted = (name: string) => want === undefined || want.has(name);
      const scale = 1 / Math.sqrt(hd);
      for (let layer = 0; layer < s.layers; layer++) {
        const L = this.#layers[layer];
        if (s.family === "gpt2") {
          x.spectr_lm_layer_norm(hidden, m, d, L.norm1, L.norm1Bias, s.eps, normed);
          this.#linear(q8, normed, m, d, L.q, 3 * d, L.qBias, qkv);
        } else {
          x.spectr_lm_rms_norm(hidden, m, d, L.norm1, s.eps, normed);
          this.#linear(q8, normed, m, d, L.q, qWidth, L.qBias, q);
          this.#linear(q8, normed, m, d, L.k, kvWidth, L.kBias, kNew);
          this.#linear(q8, normed, m, d, L.v, kvWidth, L.vBias, vNew);
          this.#applyRope(q, m, s.heads, rope!);
          this.#applyRope(kNew, m, s.kvHeads, rope!);
        }
        // the new keys / values after each row's past, [rows, kvHeads, total, hd]
        const f = mem.f32;
        const pk = feeds[`past_key_values.${layer}.key`]?.data as Float32Array | undefined;
        const pv = feeds[`past_key_values.${layer}.value`]?.data as Float32Array | undefined;
        const stride = s.family === "gpt2" ? 3 * d : kvWidth;
        const kSrc = s.family === "gpt2" ? (qkv >> 2) + d : kNew >> 2;
        const vSrc = s.family === "gpt2" ? (qkv >> 2) + 2 * d : vNew >> 2;
        for (let r = 0; r < rows; r++) {
          for (let h = 0; h < s.kvHeads; h++) {
            const dst = r * cacheLen + h * total * hd;
            if (past > 0) {
              const src = (r * s.kvHeads + h) * past * hd;
              f.set(pk!.subarray(src, src + past * hd), (kCache >> 2) + dst);
              f.set(pv!.subarray(src, src + past * hd), (vCache >> 2) + dst);
            }
            for (let i = 0; i < t; i++) {
              const from = (r * t + i) * stride + h * hd, to = dst + (past + i) * hd;
              f.copyWithin((kCache >> 2) + to, kSrc + from, kSrc + from + hd);
              f.copyWithin((vCache >> 2) + to, vSrc + from, vSrc + from + hd);
            }
          }
        }
        for (let r = 0; r < rows; r++) {
          this.#writeMask(mem.u8, maskAt, mask, r, t, past, total, is4d);
          const qAt = s.family === "gpt2" ? 0 : q + r * t * qWidth * 4;
          x.spectr_lm_attention(
            s.family === "gpt2" ? this.#packQ(qkv, r, t, d, packedQ) : qAt,
            kCache + r * cacheLen * 4,
            vCache + r * cacheLen * 4,
            maskAt,
            t,
            total,
            s.heads,
            s.kvHeads,
            hd,
            scale,
            scores,
            attnOut + r * t * qWidth * 4,
          );
        }
        const f2 = mem.f32;
        for (const [kv, at] of [["key", kCache], ["value", vCache]] as const) {
          const name = `present.${layer}.${kv}`;
          if (!wanted(name)) continue;
          presents[name] = new KernelTensor(
            "float32",
            f2.slice(at >> 2, (at >> 2) + rows * cacheLen),
            [rows, s.kvHeads, total, hd],
          );
        }
        this.#linear(q8, attnOut, m, qWidth, L.o, d, L.oBias, proj);
        this.#addInto(hidden, proj, m * d);
        if (s.family === "gpt2") {
          x.spectr_lm_layer_norm(hidden, m, d, L.norm2, L.norm2Bias, s.eps, normed);
          this.#linear(q8, normed, m, d, L.fc, s.inner, L.fcBias, fc);
          x.spectr_lm_gelu_tanh(fc, m * s.inner);
        } else {
          x.spectr_lm_rms_norm(hidden, m, d, L.norm2, s.eps, normed);
          this.#linear(q8, normed, m, d, L.fc, s.inner, 0, fc);
          this.#linear(q8, normed, m, d, L.up, s.inner, 0, up);
          x.spectr_lm_silu_mul(fc, up, m * s.inner);
        }
        this.#linear(q8, fc, m, s.inner, L.down, d, L.downBias, proj);
        this.#addInto(hidden, proj, m * d);
        // the residual stream after this layer (before the next layer's or the final norm)
        const hiddenName = `hidden_states.${layer}`;
        if (this.#hiddenStates.includes(layer) && wanted(hiddenName)) {
          hiddenOut[hiddenName] = new KernelTensor(
            "float32",
            mem.f32.slice(hidden >> 2, (hidden >> 2) + m * d),
            [rows, t, d],
          );
        }
      }
      if (want !== undefined && !want.has("logits")) return { ...presents, ...hiddenOut };
      if (s.family === "gpt2") {
        x.spectr_lm_layer_norm(hidden, m, d, this.#normF, this.#normFBias, s.eps, normed);
      } else x.spectr_lm_rms_norm(hidden, m, d, this.#normF, s.eps, normed);
      const head = this.#head;
      const n = s.subset ? s.subset.headIds.length : s.vocab; // head rows
      if (head.lin.f32 === 0 || !head.vocabMajor) this.#linear(q8, normed, m, d, head.lin, n, 0, logits);
      else x.spectr_lm_linear_t(normed, m, d, head.lin.f32, n, logits);
      let out: Float32Array;
      if (s.subset) {
        const { headIds, fill } = s.subset, f = mem.f32, at = logits >> 2;
        out = new Float32Array(m * s.vocab).fill(fill);
        for (let r = 0; r < m; r++) {
          for (let i = 0; i < n; i++) out[r * s.vocab + headIds[i]] = f[at + r * n + i];
        }
      } else {
        out = mem.f32.slice(logits >> 2, (logits >> 2) + m * s.vocab);
      }
      return { logits: new KernelTensor("float32", out, [rows, t, s.vocab]), ...presents, ...hiddenOut };
    } finally {
      mem.release();
    }
  }

  /**
   * `out[m×n] = x[m×k] · W (+ bias)`: float32 weights directly, 8-bit ones after quantizing x's rows
   * into `scratch` (sized for the widest input of the forward).
   */
  #linear(
    scratch: Q8Scratch,
    x: number,
    m: number,
    k: number,
    w: LinearAt,
    n: number,
    bias: number,
    out: number,
  ): void {
    const e = this.#mem.x;
    if (w.f32 !== 0) {
      e.spectr_lm_linear(x, m, k, w.f32, n, bias, out);
      return;
    }
    const { xq, xs, xsum } = scratch;
    e.spectr_lm_quantize_rows(x, m, k, xq, xs, xsum);
    e.spectr_lm_linear_q8(xq, xs, xsum, m, k, w.codes, w.scales, w.mins, n, bias, out);
  }

  /** Token `id`'s embedding into the f32 slots from `at` (float index): copied, or dequantized. */
  #embedRow(id: number, at: number): void {
    const mem = this.#mem, d = this.#s.d, e = this.#embed, f = mem.f32;
    if (e.f32 !== 0) {
      f.copyWithin(at, (e.f32 >> 2) + id * d, (e.f32 >> 2) + (id + 1) * d);
      return;
    }
    const blocks = d / Q8_BLOCK;
    const codes = new Int8Array(mem.u8.buffer, e.codes + id * d, d);
    for (let b = 0; b < blocks; b++) {
      const scale = f[(e.scales >> 2) + id * blocks + b],
        min = e.mins ? f[(e.mins >> 2) + id * blocks + b] : 0;
      for (let i = 0; i < Q8_BLOCK; i++) f[at + b * Q8_BLOCK + i] = scale * codes[b * Q8_BLOCK + i] + min;
    }
  }

  /** Copies row r's query columns out of the fused q|k|v rows into `at` ([t, d]); returns `at`. */
  #packQ(qkv: number, r: number, t: number, d: number, at: number): number {
    const f = this.#mem.f32;
    for (let i = 0; i < t; i++) {
      const from = (qkv >> 2) + (r * t + i) * 3 * d;
      f.copyWithin((at >> 2) + i * d, from, from + d);
    }
    return at;
  }

  /** Row r's visibility `[t, total]` as bytes at `at`: the 4D mask as given, or causal × the 2D mask. */
  #writeMask(
    u8: Uint8Array,
    at: number,
    mask: Tensor,
    r: number,
    t: number,
    past: number,
    total: number,
    is4d: boolean,
  ): void {
    const data = mask.data as BigInt64Array | Uint8Array;
    for (let i = 0; i < t; i++) {
      for (let j = 0; j < total; j++) {
        const v = is4d ? data[(r * t + i) * total + j] : j <= past + i ? data[r * total + j] : 0;
        u8[at + i * total + j] = v ? 1 : 0;
      }
    }
  }

  #addInto(dst: number, src: number, n: number): void {
    const f = this.#mem.f32, a = dst >> 2, b = src >> 2;
    for (let i = 0; i < n; i++) f[a + i] += f[b + i];
  }

  /** cos / sin of each position × the graph's frequencies, float32 as the graph computes them. */
  #ropeTables(pos: Int32Array): { cos: Float32Array; sin: Float32Array } {
    const half = this.#s.hd / 2, inv = this.#s.ropeInvFreq!;
    const cos = new Float32Array(pos.length * half), sin = new Float32Array(pos.length * half);
    for (let p = 0; p < pos.length; p++) {
      for (let i = 0; i < half; i++) {
        const a = Math.fround(pos[p] * inv[i]);
        cos[p * half + i] = Math.cos(a);
        sin[p * half + i] = Math.sin(a);
      }
    }
    return { cos, sin };
  }

  /** Rotates each head of the rows `at[m, heads·hd]` in place. */
  #applyRope(at: number, m: number, heads: number, tables: { cos: Float32Array; sin: Float32Array }): void {
    const f = this.#mem.f32, hd = this.#s.hd, half = hd / 2, base = at >> 2;
    const interleaved = this.#s.rope === "interleaved";
    for (let i = 0; i < m; i++) {
      for (let h = 0; h < heads; h++) {
        const o = base + (i * heads + h) * hd;
        for (let j = 0; j < half; j++) {
          const c = tables.cos[i * half + j], sn = tables.sin[i * half + j];
          const a = interleaved ? o + 2 * j : o + j, b = interleaved ? o + 2 * j + 1 : o + j + half;
          const x1 = f[a], x2 = f[b];
          f[a] = x1 * c - x2 * sn;
          f[b] = x2 * c + x1 * sn;
        }
      }
    }
  }
}
