/**
 * The shared kernel ops a model family's forward recipe (families/) is written in, over the kernel
 * backend's WebAssembly memory: {@linkcode LinearMemory} (the weights, placed once, then per-forward
 * scratch) and {@linkcode ForwardPass} (one forward: linear layers, float32 or 8-bit through one
 * `linear()`, layer / RMS norms, GELU and SwiGLU, embeddings, RoPE, attention over the KV cache,
 * and the outputs it collects: logits, `present.*`, `hidden_states.{i}`). The arithmetic is
 * `wasm/src/lm.rs`'s; the session that feeds a pass and returns its outputs is kernel_session.ts.
 *
 * @module
 */
import type { KernelExports } from "../../kernel/wasm_abi.ts";
import type { InPlaceCodes } from "./file_image.ts";
import type { Tensor } from "../types.ts";
import { isQ8, type LinearWeight, Q8_BLOCK, recentreCodes } from "./q8_weight.ts";
import type { HeadWeight, VocabSubset } from "./transformer_weights.ts";

/** Where a linear weight lies in the kernel's memory: float32 `[k, n]` at `f32`, or 8-bit blocks. */
export interface LinearAt {
  /** Byte offset of the float32 weight; 0 when quantized. */
  f32: number;
  /** Byte offset of the 8-bit codes `[n, k]` (int8 after placing); 0 when float32. */
  codes: number;
  /** Byte offset of the block scales `[n, k/32]` (8-bit form). */
  scales: number;
  /** Byte offset of the block minimums `[n, k/32]` (8-bit form with minimums), else 0. */
  mins: number;
}

/** The output head in the kernel's memory: `vocabMajor` float32 `[vocab, d]` (a tied embedding), else `[d, vocab]`; or 8-bit blocks. */
export interface HeadAt {
  /** The weight. */
  lin: LinearAt;
  /** Whether a float32 weight is `[vocab, d]` (multiplied transposed). */
  vocabMajor: boolean;
}

/** A block of rows in the kernel's memory: row i (one token) starts `i · stride` floats after `at` (bytes). */
export interface Strided {
  /** Byte offset of row 0. */
  at: number;
  /** Floats from one row to the next. */
  stride: number;
}

/** RoPE tables of one forward: cos / sin of each position × each frequency, `[m, hd / 2]`. */
export interface RopeTables {
  /** cos, float32 as the graph computes it. */
  cos: Float32Array;
  /** sin. */
  sin: Float32Array;
}

/** One layer of {@linkcode ForwardPass.linears}: `out[m×n] = src · w (+ bias)`. */
export interface LinearCall {
  /** The weight. */
  w: LinearAt;
  /** Its outputs per row. */
  n: number;
  /** The bias's offset, 0 for none. */
  bias: number;
  /** Where the `[m, n]` result goes. */
  out: number;
}

/** A WebAssembly memory with a bump allocator: weights first (kept), then per-call scratch. */
export class LinearMemory {
  /** The kernel's exports (its functions and memory). */
  readonly x: KernelExports;
  #top: number;
  #mark = 0;
  #inPlace?: InPlaceCodes;
  #f32!: Float32Array;
  #u8!: Uint8Array;

  /** The memory of the kernel instance `x`, allocating after its heap base. */
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

  /** A copy of `data` in the memory (or where it lies, for a weight of the file image); returns its byte offset. */
  put(data: Float32Array): number {
    const adopted = this.#inPlace?.get(data); // a weight of the file image, where it lies
    if (adopted !== undefined) return adopted;
    const at = this.alloc(data.length * 4);
    this.f32.set(data, at >> 2);
    return at;
  }

  /** A copy of a vector (a norm's weight, a bias), or 0 when there is none. */
  vector(data: Float32Array | undefined): number {
    return data === undefined ? 0 : this.put(data);
  }

  /** A copy of a linear weight: float32 as it is, 8-bit codes re-centred to int8 (code − 128); none when undefined. */
  linear(w: LinearWeight | undefined): LinearAt {
    const none: LinearAt = { f32: 0, codes: 0, scales: 0, mins: 0 };
    if (w === undefined) return none;
    if (!isQ8(w)) return { ...none, f32: this.put(w) };
    let codes = this.#inPlace?.get(w.codes); // already re-centred where the file image holds them
    if (codes === undefined) {
      codes = this.alloc(w.codes.length);
      recentreCodes(w.codes, this.u8.subarray(codes, codes + w.codes.length));
    }
    return { f32: 0, codes, scales: this.put(w.scales), mins: w.mins ? this.put(w.mins) : 0 };
  }

  /** Codes that lie in this memory already (a file image, file_image.ts): `linear` uses them in place. */
  adopt(codes: InPlaceCodes): void {
    this.#inPlace = codes;
  }

  /** The output head: the embedding's copy `embedAt` when tied to it (the same array), else a copy of its own. */
  head(head: HeadWeight<LinearWeight>, embed: LinearWeight, embedAt: LinearAt): HeadAt {
    return head.weight === embed
      ? { lin: embedAt, vocabMajor: true }
      : { lin: this.linear(head.weight), vocabMajor: head.layout === "vocab-major" };
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

/** The outputs of a linear layer's input count: a float32 `[k, n]` weight's n, or an 8-bit one's. */
export function outputsOf(w: LinearWeight, k: number): number {
  return isQ8(w) ? w.n : w.length / k;
}

/** The sizes of a model the session's mechanics need (from its config). */
export interface PassShape {
  /** Hidden size. */
  d: number;
  /** Query heads. */
  heads: number;
  /** Key / value heads. */
  kvHeads: number;
  /** Head size. */
  hd: number;
  /** Vocabulary (logits per token). */
  vocab: number;
}

/** One forward's inputs, checked by the session. */
export interface PassInput {
  /** Rows (batch) of this call. */
  rows: number;
  /** Tokens per row. */
  t: number;
  /** Cached positions of each row. */
  past: number;
  /** `input_ids` `[rows, t]`. */
  ids: BigInt64Array;
  /** The position of each fed token `[rows · t]`. */
  pos: Int32Array;
  /** `attention_mask`: `[rows, past + t]` (causal is implied) or `[rows, 1, t, past + t]`. */
  mask: Tensor;
  /** Whether `mask` is the 4D form. */
  is4d: boolean;
  /** Layer `layer`'s cached keys or values `[rows, kvHeads, past, hd]`, if any. */
  pastKv(layer: number, kind: "key" | "value"): Float32Array | undefined;
  /** The outputs to compute (undefined: all). */
  want?: ReadonlySet<string>;
  /** Layers whose residual stream is an output (`hidden_states.{i}`). */
  hiddenStates: readonly number[];
}

/** 8-bit layers' quantized input rows (`spectr_lm_quantize_rows`' outputs), for inputs up to `k` wide. */
interface Q8Scratch {
  k: number;
  xq: number;
  xs: number;
  xsum: number;
}

/**
 * One forward over the kernel's memory: the shared ops a family's recipe calls (all over the
 * `m = rows · t` fed tokens), the KV cache its attention reads and writes, and the outputs it
 * collects. Byte offsets everywhere (`floats` gives scratch); the scratch lives until the session
 * releases it after the forward.
 */
export class ForwardPass {
  /** The kernel's exports. */
  readonly x: KernelExports;
  /** Rows (batch) of this call. */
  readonly rows: number;
  /** Tokens per row. */
  readonly t: number;
  /** Tokens of this call: rows · t. */
  readonly m: number;
  /** Cached positions per row. */
  readonly past: number;
  /** Positions each row attends over: past + t. */
  readonly total: number;
  /** Hidden size. */
  readonly d: number;
  /** Query heads. */
  readonly heads: number;
  /** Key / value heads. */
  readonly kvHeads: number;
  /** Head size. */
  readonly hd: number;
  /** Vocabulary (logits per token). */
  readonly vocab: number;
  /** The position of each fed token. */
  readonly pos: Int32Array;
  /** `present.{i}.key` / `.value` as computed (those wanted), in layer order. */
  readonly presents: Record<string, Float32Array> = {};
  /** `hidden_states.{i}` as computed (those exposed and wanted). */
  readonly hiddenStates: Record<string, Float32Array> = {};
  /** The logits `[m, vocab]`, once computed (when wanted). */
  logits: Float32Array | undefined;
  readonly #mem: LinearMemory;
  readonly #in: PassInput;
  readonly #kCache: number;
  readonly #vCache: number;
  readonly #cacheLen: number;
  readonly #maskAt: number;
  readonly #scores: number;
  #packedQ = 0;
  #q8: Q8Scratch | undefined;

  /** A pass over `mem` (its scratch allocated after what the memory keeps). */
  constructor(mem: LinearMemory, shape: PassShape, input: PassInput) {
    this.#mem = mem;
    this.x = mem.x;
    this.#in = input;
    this.rows = input.rows;
    this.t = input.t;
    this.past = input.past;
    this.pos = input.pos;
    this.d = shape.d;
    this.heads = shape.heads;
    this.kvHeads = shape.kvHeads;
    this.hd = shape.hd;
    this.vocab = shape.vocab;
    this.m = this.rows * this.t;
    this.total = this.past + this.t;
    this.#cacheLen = this.kvHeads * this.total * this.hd;
    this.#kCache = this.floats(this.rows * this.#cacheLen);
    this.#vCache = this.floats(this.rows * this.#cacheLen);
    this.#maskAt = mem.alloc(this.t * this.total);
    this.#scores = this.floats(this.total);
  }

  /** Whether `name` is an output to compute. */
  wants(name: string): boolean {
    return this.#in.want === undefined || this.#in.want.has(name);
  }

  /** Whether the logits are wanted (a recipe skips its final norm and head when not). */
  get wantsLogits(): boolean {
    return this.wants("logits");
  }

  /** Scratch for `n` float32 values; returns its byte offset. */
  floats(n: number): number {
    return this.#mem.alloc(n * 4);
  }

  /**
   * `out[m×n] = src[m×k] · W (+ bias)`: float32 weights directly, 8-bit ones after quantizing the
   * rows of src (scratch kept for the widest input so far).
   */
  linear(src: number, k: number, w: LinearAt, n: number, bias: number, out: number): void {
    this.linears(src, k, [{ w, n, bias, out }]);
  }

  /**
   * Several linear layers of the same input (q, k, v; gate and up): as {@linkcode linear} each,
   * with the rows of src quantized once for all the 8-bit ones.
   */
  linears(src: number, k: number, layers: readonly LinearCall[]): void {
    const e = this.x;
    let q8: Q8Scratch | undefined;
    for (const { w, n, bias, out } of layers) {
      if (w.f32 !== 0) {
        e.spectr_lm_linear(src, this.m, k, w.f32, n, bias, out);
        continue;
      }
      if (q8 === undefined) {
        q8 = this.#q8Scratch(k);
        e.spectr_lm_quantize_rows(src, this.m, k, q8.xq, q8.xs, q8.xsum);
      }
      e.spectr_lm_linear_q8(q8.xq, q8.xs, q8.xsum, this.m, k, w.codes, w.scales, w.mins, n, bias, out);
    }
  }

  #q8Scratch(k: number): Q8Scratch {
    if (this.#q8 === undefined || this.#q8.k < k) {
      const m = this.m;
      this.#q8 = {
        k,
        xq: this.#mem.alloc(m * k * 2),
        xs: this.floats(m * Math.ceil(k / Q8_BLOCK)),
        xsum: this.floats(m * Math.ceil(k / Q8_BLOCK)),
      };
    }
    return this.#q8;
  }

  /** Layer norm of the `[m, d]` rows at `src` (weight, bias, epsilon) into `out`. */
  layerNorm(src: number, weight: number, bias: number, eps: number, out: number): void {
    this.x.spectr_lm_layer_norm(src, this.m, this.d, weight, bias, eps, out);
  }

  /** RMS norm of the `[m, d]` rows at `src` into `out`. */
  rmsNorm(src: number, weight: number, eps: number, out: number): void {
    this.x.spectr_lm_rms_norm(src, this.m, this.d, weight, eps, out);
  }

  /** In place tanh GELU of `n` values (GPT-2's MLP). */
  gelu(at: number, n: number): void {
    this.x.spectr_lm_gelu_tanh(at, n);
  }

  /** In place `gate ← silu(gate) · up` of `n` values (SwiGLU). */
  siluMul(gate: number, up: number, n: number): void {
    this.x.spectr_lm_silu_mul(gate, up, n);
  }

  /** `dst[n] += src[n]` (a residual connection). */
  add(dst: number, src: number, n: number): void {
    const f = this.#mem.f32, a = dst >> 2, b = src >> 2;
    for (let i = 0; i < n; i++) f[a + i] += f[b + i];
  }

  /**
   * The fed tokens' embeddings `[m, d]` into `out`: rows of `table` (through `inMap` for a
   * vocabulary subset), plus learned position embeddings `[maxPositions, d]` at `positions` if any.
   *
   * @throws {RangeError} an id outside the vocabulary, a position outside the table.
   */
  embed(
    out: number,
    table: LinearAt,
    options: { inMap?: Int32Array; positions?: number; maxPositions?: number } = {},
  ): void {
    const f = this.#mem.f32, h = out >> 2, d = this.d, ids = this.#in.ids, pos = this.pos;
    const { inMap, positions = 0, maxPositions = Infinity } = options;
    for (let i = 0; i < this.m; i++) {
      const id = Number(ids[i]);
      if (!(id >= 0 && id < this.vocab)) {
        throw new RangeError(
          `Cannot run the model: input id ${id} is outside the vocabulary [0, ${this.vocab})`,
        );
      }
      this.#embedRow(table, inMap ? inMap[id] : id, h + i * d);
      if (positions) {
        const p = pos[i];
        if (!(p >= 0 && p < maxPositions)) {
          throw new RangeError(`Cannot run the model: position ${p} is outside [0, ${maxPositions})`);
        }
        const pe = (positions >> 2) + p * d;
        for (let j = 0; j < d; j++) f[h + i * d + j] += f[pe + j];
      }
    }
  }

  /** Row `id` of the table into the f32 slots from `at` (float index): copied, or dequantized. */
  #embedRow(e: LinearAt, id: number, at: number): void {
    const mem = this.#mem, d = this.d, f = mem.f32;
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

  /** cos / sin of each fed position × the graph's inverse frequencies `[hd / 2]`, float32 as the graph computes them. */
  ropeTables(invFreq: Float32Array): RopeTables {
    const pos = this.pos, half = this.hd / 2, inv = invFreq;
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

  /** Rotates each head of the rows `at[m, heads·hd]` in place: pairs (i, i + hd/2) ("half") or (2i, 2i + 1). */
  rope(at: number, heads: number, tables: RopeTables, style: "half" | "interleaved"): void {
    const f = this.#mem.f32, hd = this.hd, half = hd / 2, base = at >> 2;
    const interleaved = style === "interleaved";
    for (let i = 0; i < this.m; i++) {
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

  /**
   * Layer `layer`'s attention: the new keys / values (rows of `k`, `v`: kvHeads · hd values each)
   * go after each row's cached ones (`present.{layer}.*`, those wanted), then each row's queries
   * (rows of `q`: heads · hd values) attend over them under the mask; the result `[m, heads · hd]`
   * goes to `out`.
   */
  attention(layer: number, q: Strided, k: Strided, v: Strided, out: number): void {
    const { rows, t, past, total, hd, kvHeads } = this, cacheLen = this.#cacheLen;
    const kCache = this.#kCache, vCache = this.#vCache;
    const qWidth = this.heads * hd;
    if (q.stride !== qWidth && this.#packedQ === 0) this.#packedQ = this.floats(t * qWidth);
    // the new keys / values after each row's past, [rows, kvHeads, total, hd]
    const f = this.#mem.f32;
    const pk = this.#in.pastKv(layer, "key"), pv = this.#in.pastKv(layer, "value");
    const kSrc = k.at >> 2, vSrc = v.at >> 2;
    for (let r = 0; r < rows; r++) {
      for (let h = 0; h < kvHeads; h++) {
        const dst = r * cacheLen + h * total * hd;
        if (past > 0) {
          const src = (r * kvHeads + h) * past * hd;
          f.set(pk!.subarray(src, src + past * hd), (kCache >> 2) + dst);
          f.set(pv!.subarray(src, src + past * hd), (vCache >> 2) + dst);
        }
        for (let i = 0; i < t; i++) {
          const to = dst + (past + i) * hd;
          const kFrom = kSrc + (r * t + i) * k.stride + h * hd,
            vFrom = vSrc + (r * t + i) * v.stride + h * hd;
          f.copyWithin((kCache >> 2) + to, kFrom, kFrom + hd);
          f.copyWithin((vCache >> 2) + to, vFrom, vFrom + hd);
        }
      }
    }
    for (let r = 0; r < rows; r++) {
      this.#writeMask(r);
      this.x.spectr_lm_attention(
        q.stride === qWidth ? q.at + r * t * qWidth * 4 : this.#packQ(q, r, qWidth),
        kCache + r * cacheLen * 4,
        vCache + r * cacheLen * 4,
        this.#maskAt,
        t,
        total,
        this.heads,
        kvHeads,
        hd,
        1 / Math.sqrt(hd),
        this.#scores,
        out + r * t * qWidth * 4,
      );
    }
    const f2 = this.#mem.f32;
    for (const [kv, at] of [["key", kCache], ["value", vCache]] as const) {
      const name = `present.${layer}.${kv}`;
      if (this.wants(name)) this.presents[name] = f2.slice(at >> 2, (at >> 2) + rows * cacheLen);
    }
  }

  /** Row r's queries packed into `[t, qWidth]` scratch (from rows `q.stride` apart); returns its offset. */
  #packQ(q: Strided, r: number, qWidth: number): number {
    const f = this.#mem.f32, at = this.#packedQ, t = this.t;
    for (let i = 0; i < t; i++) {
      const from = (q.at >> 2) + (r * t + i) * q.stride;
      f.copyWithin((at >> 2) + i * qWidth, from, from + qWidth);
    }
    return at;
  }

  /** Row r's visibility `[t, total]` as bytes: the 4D mask as given, or causal × the 2D mask. */
  #writeMask(r: number): void {
    const u8 = this.#mem.u8, at = this.#maskAt, { t, past, total } = this;
    const { mask, is4d } = this.#in;
    const data = mask.data as BigInt64Array | Uint8Array;
    for (let i = 0; i < t; i++) {
      for (let j = 0; j < total; j++) {
        const v = is4d ? data[(r * t + i) * total + j] : j <= past + i ? data[r * total + j] : 0;
        u8[at + i * total + j] = v ? 1 : 0;
      }
    }
  }

  /** After layer `layer`: its residual stream `[m, d]` at `hidden` is `hidden_states.{layer}` when exposed and wanted. */
  layerOutput(layer: number, hidden: number): void {
    const name = `hidden_states.${layer}`;
    if (this.#in.hiddenStates.includes(layer) && this.wants(name)) {
      this.hiddenStates[name] = this.#mem.f32.slice(hidden >> 2, (hidden >> 2) + this.m * this.d);
    }
  }

  /**
   * The logits of the final-normed rows `[m, d]` at `normed` through the head (when wanted): one
   * per head row, scattered to the token ids of a vocabulary subset (others get its `fill`).
   */
  head(normed: number, head: HeadAt, subset?: VocabSubset): void {
    if (!this.wantsLogits) return;
    const { m, d, vocab } = this;
    const n = subset ? subset.headIds.length : vocab; // head rows
    const logits = this.floats(m * n);
    if (head.lin.f32 === 0 || !head.vocabMajor) this.linear(normed, d, head.lin, n, 0, logits);
    else this.x.spectr_lm_linear_t(normed, m, d, head.lin.f32, n, logits);
    if (subset) {
      const { headIds, fill } = subset, f = this.#mem.f32, at = logits >> 2;
      const out = new Float32Array(m * vocab).fill(fill);
      for (let r = 0; r < m; r++) {
        for (let i = 0; i < n; i++) out[r * vocab + headIds[i]] = f[at + r * n + i];
      }
      this.logits = out;
    } else {
      this.logits = this.#mem.f32.slice(logits >> 2, (logits >> 2) + m * vocab);
    }
  }
}
