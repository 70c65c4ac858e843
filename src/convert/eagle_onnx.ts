/**
 * The ONNX graphs of spectr's feature drafter (EAGLE-style; the format is documented in
 * docs/eagle_drafter.md): `onnx/fuse.onnx` maps the target features (the residual streams of a
 * few target layers, concatenated) to the drafter's hidden size, and `onnx/model.onnx` is one
 * Llama decoder layer over `in_proj(concat(E[token], hidden))` with a KV cache, whose head is the
 * target's own (frozen) token embedding restricted to the draft vocabulary: it outputs the last
 * position's logits over the draft vocabulary's slots (`draft_logits`), and `onnx/draft_vocab.json`
 * maps slot s to target token `d2t[s]` (the proposer scatters; q = 0 outside d2t).
 *
 * Weights come from `drafter.safetensors` (trained elsewhere, in Hugging Face layout: RoPE
 * `rotate_half`, no row reordering), the embedding E from the target's GGUF. A Q8_0 (or Q4_0)
 * E is gathered in the graph from its 8-bit codes and block scales (as the converter's q8 graph
 * does), so the 49152 × 576 table takes 32 MB instead of 113 MB in float32; the head is the
 * float32 rows of E at `d2t`.
 *
 * @module
 */

import { join } from "node:path";
import { dequantize } from "./dequant.ts";
import { GgmlType } from "./ggml_types.ts";
import { findTensor, type GgufTensorInfo, parseGguf } from "./gguf.ts";
import { nbitsInit, nbitsMatMul, type Part } from "./llama_onnx.ts";
import { nbitsCompatible, toNBits8 } from "./nbits.ts";
import { DataType, GraphBuilder, writeModel } from "../onnx/mod.ts";
import { parseSafetensors, type SafetensorsTensor } from "./safetensors.ts";
import { quantize } from "./_quantize.ts";

/** The drafter's config.json (see docs/eagle_drafter.md). */
export interface EagleConfig {
  /** Always "spectr_eagle". */
  model_type: "spectr_eagle";
  /** Target layers whose outputs form the features, in concatenation order. */
  target_hidden_layers: number[];
  /** The target's hidden size (each feature piece). */
  target_hidden_size: number;
  /** The drafter's hidden size (equal to the embedding's row length). */
  hidden_size: number;
  /** MLP width. */
  intermediate_size: number;
  /** Query heads. */
  num_attention_heads: number;
  /** Key / value heads (grouped-query attention). */
  num_key_value_heads: number;
  /** Per-head size (even). */
  head_dim: number;
  /** RMSNorm epsilon. */
  rms_norm_eps: number;
  /** RoPE base. */
  rope_theta: number;
  /** The target's vocabulary size. */
  vocab_size: number;
  /** Size of the draft vocabulary (`d2t`'s length). */
  draft_vocab_size: number;
  /** Longest sequence trained on (informational). */
  max_position_embeddings?: number;
  /** The target model's folder name, resolved beside the drafter folder. */
  target: string;
}

/**
 * The target's token embedding E `[vocab_size, hidden_size]`: float32 values, or a GGUF tensor
 * (`token_embd.weight`) and the GGUF's bytes.
 */
export type EagleEmbedding = { data: Float32Array } | { bytes: Uint8Array; tensor: GgufTensorInfo };

/** What {@linkcode buildEagleGraphs} returns. */
export interface EagleGraphs {
  /** `onnx/fuse.onnx`: target_hidden → hidden_states. */
  fuse: GraphBuilder;
  /** `onnx/model.onnx`: one drafter step with a KV cache (float32 weights; the wasm graph). */
  model: GraphBuilder;
  /**
   * `onnx/model_quantized.onnx` (dtype "q8"): the same step with every linear layer and the head
   * as 8-bit `MatMulNBits` (block 32, accuracy_level 4: int8 activations on onnxruntime's CPU EP).
   */
  quantized: GraphBuilder;
  /** Opset imports of fuse and model. */
  opsets: Record<string, number>;
  /** Opset imports of quantized (com.microsoft for MatMulNBits). */
  quantizedOpsets: Record<string, number>;
  /** How E is stored: "q8" (8-bit codes + block scales, gathered exactly) or "fp32". */
  embedding: "q8" | "fp32";
  /** `d2t` `[draft_vocab_size]`: slot s of `draft_logits` is target token `d2t[s]` (strictly ascending). */
  d2t: Int32Array;
}

const INT_FIELDS = [
  "target_hidden_size",
  "hidden_size",
  "intermediate_size",
  "num_attention_heads",
  "num_key_value_heads",
  "head_dim",
  "vocab_size",
  "draft_vocab_size",
] as const;

/**
 * Checks a parsed config.json against the drafter format.
 *
 * @param json The parsed config.json.
 * @returns The config, typed.
 * @throws {TypeError} a missing or mistyped field, or another model_type.
 * @throws {RangeError} sizes that do not fit together (odd head_dim, heads not a multiple of kv heads, ...).
 *
 * @example
 * ```ts
 * import { parseEagleConfig } from "./eagle_onnx.ts";
 * import assert from "node:assert/strict";
 * assert.throws(() => parseEagleConfig({ model_type: "llama" }), TypeError);
 * ```
 */
export function parseEagleConfig(json: unknown): EagleConfig {
  const c = json as Record<string, unknown>;
  const bad = (msg: string): never => {
    throw new TypeError(`Cannot read the drafter config: ${msg}`);
  };
  if (typeof c !== "object" || c === null) bad("not a JSON object");
  if (c.model_type !== "spectr_eagle") {
    bad(`model_type is ${JSON.stringify(c.model_type)}, not "spectr_eagle"`);
  }
  for (const k of INT_FIELDS) {
    if (!Number.isSafeInteger(c[k]) || (c[k] as number) <= 0) {
      bad(`${k} must be a positive integer, got ${JSON.stringify(c[k])}`);
    }
  }
  for (const k of ["rms_norm_eps", "rope_theta"]) {
    if (typeof c[k] !== "number" || !((c[k] as number) > 0)) {
      bad(`${k} must be a positive number, got ${c[k]}`);
    }
  }
  const layers = c.target_hidden_layers;
  if (
    !Array.isArray(layers) || layers.length === 0 || !layers.every((i) => Number.isSafeInteger(i) && i >= 0)
  ) {
    bad(`target_hidden_layers must be a non-empty list of layer indices, got ${JSON.stringify(layers)}`);
  }
  if (typeof c.target !== "string" || c.target === "" || c.target.includes("/")) {
    bad(`target must be a folder name, got ${JSON.stringify(c.target)}`);
  }
  const cfg = c as unknown as EagleConfig;
  const range = (msg: string): never => {
    throw new RangeError(`Cannot read the drafter config: ${msg}`);
  };
  if (cfg.head_dim % 2) range(`head_dim ${cfg.head_dim} is odd (RoPE rotates pairs)`);
  if (cfg.num_attention_heads % cfg.num_key_value_heads) {
    range(
      `num_attention_heads ${cfg.num_attention_heads} is not a multiple of num_key_value_heads ${cfg.num_key_value_heads}`,
    );
  }
  if (cfg.draft_vocab_size > cfg.vocab_size) {
    range(`draft_vocab_size ${cfg.draft_vocab_size} exceeds vocab_size ${cfg.vocab_size}`);
  }
  return cfg;
}

/** Tensor name → expected shape, from the config (docs/eagle_drafter.md). */
function expectedShapes(c: EagleConfig): Record<string, number[]> {
  const H = c.hidden_size, Q = c.num_attention_heads * c.head_dim, KV = c.num_key_value_heads * c.head_dim;
  const I = c.intermediate_size;
  return {
    "fc.weight": [H, c.target_hidden_layers.length * c.target_hidden_size],
    "in_proj.weight": [H, 2 * H],
    "in_proj.bias": [H],
    "layer.input_norm.weight": [H],
    "layer.post_norm.weight": [H],
    "layer.q.weight": [Q, H],
    "layer.k.weight": [KV, H],
    "layer.v.weight": [KV, H],
    "layer.o.weight": [H, Q],
    "layer.gate.weight": [I, H],
    "layer.up.weight": [I, H],
    "layer.down.weight": [H, I],
    "norm.weight": [H],
    "d2t": [c.draft_vocab_size],
  };
}

/** Checks every tensor's presence, shape and dtype, and d2t's values; returns the float arrays. */
function checkWeights(c: EagleConfig, weights: Map<string, SafetensorsTensor>): {
  w: Record<string, Float32Array>;
  d2t: Int32Array;
} {
  const w: Record<string, Float32Array> = {};
  let d2t: Int32Array | undefined;
  for (const [name, shape] of Object.entries(expectedShapes(c))) {
    const t = weights.get(name);
    if (!t) {
      throw new TypeError(`Cannot build the drafter graphs: drafter.safetensors has no tensor "${name}"`);
    }
    if (JSON.stringify(t.shape) !== JSON.stringify(shape)) {
      throw new RangeError(
        `Cannot build the drafter graphs: tensor "${name}" has shape [${t.shape}], the config needs [${shape}]`,
      );
    }
    if (name === "d2t") {
      if (t.dtype !== "I32") {
        throw new TypeError(`Cannot build the drafter graphs: d2t is ${t.dtype}, not I32`);
      }
      d2t = t.data as Int32Array;
    } else {
      if (t.dtype === "I32") {
        throw new TypeError(`Cannot build the drafter graphs: tensor "${name}" is I32, not a float type`);
      }
      w[name] = t.data as Float32Array;
    }
  }
  for (let s = 0; s < d2t!.length; s++) {
    const id = d2t![s];
    if (id < 0 || id >= c.vocab_size || (s > 0 && id <= d2t![s - 1])) {
      throw new RangeError(
        `Cannot build the drafter graphs: d2t must be strictly ascending target ids in [0, ${c.vocab_size}), got d2t[${s}] = ${id}${
          s > 0 ? ` after ${d2t![s - 1]}` : ""
        }`,
      );
    }
  }
  return { w, d2t: d2t! };
}

function asBytes(x: Float32Array | Uint8Array | BigInt64Array): Uint8Array {
  return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
}

/** A `[N, K]` nn.Linear weight as a lazy float32 `[K, N]` MatMul initializer. */
function transposed(g: GraphBuilder, name: string, w: Float32Array, n: number, k: number): string {
  return g.initializer({
    name,
    dataType: DataType.FLOAT,
    dims: [k, n],
    byteLength: 4 * k * n,
    produce: () => {
      const out = new Float32Array(k * n);
      for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) out[c * n + r] = w[r * k + c];
      return asBytes(out);
    },
  });
}

/** `x / sqrt(mean(x²) + eps)` over the last axis, times `weight` when given. */
function rms(g: GraphBuilder, x: string, eps: string, weight?: string): string {
  const [ms] = g.node("ReduceMean", [g.node("Mul", [x, x])[0]], { axes: [-1], keepdims: 1 });
  const [y] = g.node("Div", [x, g.node("Sqrt", g.node("Add", [ms, eps]))[0]]);
  return weight ? g.node("Mul", [y, weight])[0] : y;
}

/** Hugging Face `rotate_half` RoPE: x·cos + concat(−x₂, x₁)·sin. */
function rope(g: GraphBuilder, x: string, cos: string, sin: string): string {
  const [x1, x2] = g.node("Split", [x], { axis: -1 }, 2);
  const [rot] = g.node("Concat", [g.node("Neg", [x2])[0], x1], { axis: -1 });
  return g.node("Add", [g.node("Mul", [x, cos])[0], g.node("Mul", [rot, sin])[0]])[0];
}

const NEG = -3.4028234663852886e38; // float32 lowest: masked scores (no NaN on all-masked rows)

/** MatMulNBits' accuracy_level in the q8 graph: int8 activations on onnxruntime's CPU EP. */
const Q8_ACCURACY_LEVEL = 4;

/** The GGUF tensor info of an nn.Linear weight `[n, k]` quantized to Q8_0 (`bytes`, offset 0). */
function q8Tensor(name: string, n: number, k: number, bytes: Uint8Array): GgufTensorInfo {
  return { name, dims: [k, n], type: GgmlType.Q8_0, typeName: "Q8_0", offset: 0, byteLength: bytes.length };
}

/** E's rows `rows` in float32 (row-major `[rows.length, hidden]`), without dequantizing all of E. */
function embeddingRows(embedding: EagleEmbedding, hidden: number, rows: Int32Array): Float32Array {
  const out = new Float32Array(rows.length * hidden);
  if ("data" in embedding) {
    rows.forEach((r, i) => out.set(embedding.data.subarray(r * hidden, (r + 1) * hidden), i * hidden));
    return out;
  }
  const { bytes, tensor } = embedding;
  const rowBytes = tensor.byteLength / tensor.dims[1];
  rows.forEach((r, i) => {
    const row = { ...tensor, dims: [hidden, 1], offset: tensor.offset + r * rowBytes, byteLength: rowBytes };
    out.set(dequantize(bytes, row), i * hidden);
  });
  return out;
}

/**
 * Builds the drafter's graphs (weights lazy: made while the files are written; the q8 weights
 * are quantized here).
 *
 * - fuse: `target_hidden` float32 `[batch, sequence_length, L · target_hidden_size]` →
 *   `hidden_states` float32 `[batch, sequence_length, hidden_size]`.
 * - model: `input_ids` int64 `[batch, sequence_length]` (target ids), `hidden_states` float32
 *   `[batch, sequence_length, hidden_size]`, `attention_mask` int64 `[batch, total_sequence_length]`
 *   (1 = attend; the causal rule is added), `position_ids` int64 `[batch, sequence_length]`,
 *   `past_key_values.0.key|value` float32 `[batch, kv_heads, past_sequence_length, head_dim]` (keys
 *   after RoPE) → `draft_logits` float32 `[batch, 1, draft_vocab_size]` (the LAST position's logits
 *   at the slots of d2t: slot s is target token `d2t[s]`), `hidden_out` float32 `[batch,
 *   sequence_length, hidden_size]`, `present.0.key|value`.
 * - quantized: the model graph with every linear layer and the head as 8-bit `MatMulNBits`
 *   (Q8_0-style blocks of the float weights; the head from E's own blocks), accuracy_level 4.
 *
 * @param config The drafter config ({@linkcode parseEagleConfig}).
 * @param weights The tensors of drafter.safetensors (`parseSafetensors(bytes).tensors`).
 * @param embedding The target's token embedding: float32 data, or its GGUF tensor and bytes
 *   (Q8_0 / Q4_0 are gathered from 8-bit codes in the graph; other types become float32).
 * @returns The graphs, their opsets, how E is stored, and d2t.
 * @throws {TypeError} a missing tensor or a tensor of the wrong dtype.
 * @throws {RangeError} a tensor or the embedding of the wrong shape, or d2t not strictly
 *   ascending ids below vocab_size.
 *
 * @example Shapes are checked against the config
 * ```ts
 * import { buildEagleGraphs, parseEagleConfig } from "./eagle_onnx.ts";
 * import assert from "node:assert/strict";
 * const config = parseEagleConfig({
 *   model_type: "spectr_eagle", target_hidden_layers: [0], target_hidden_size: 8, hidden_size: 8,
 *   intermediate_size: 8, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 4,
 *   rms_norm_eps: 1e-5, rope_theta: 10000, vocab_size: 10, draft_vocab_size: 4, target: "t",
 * });
 * assert.throws(() => buildEagleGraphs(config, new Map(), { data: new Float32Array(80) }), /no tensor "fc.weight"/);
 * ```
 */
export function buildEagleGraphs(
  config: EagleConfig,
  weights: Map<string, SafetensorsTensor>,
  embedding: EagleEmbedding,
): EagleGraphs {
  const c = parseEagleConfig(config);
  const { w, d2t } = checkWeights(c, weights);
  const H = c.hidden_size, V = c.vocab_size, Vd = c.draft_vocab_size, D = c.head_dim;
  const nH = c.num_attention_heads, nKV = c.num_key_value_heads, Q = nH * D, KV = nKV * D;
  const I = c.intermediate_size, L = c.target_hidden_layers.length, Ht = c.target_hidden_size;
  if ("data" in embedding) {
    if (embedding.data.length !== V * H) {
      throw new RangeError(
        `Cannot build the drafter graphs: the embedding has ${embedding.data.length} values, [vocab_size ${V}, hidden_size ${H}] needs ${
          V * H
        }`,
      );
    }
  } else if (JSON.stringify(embedding.tensor.dims) !== JSON.stringify([H, V])) {
    throw new RangeError(
      `Cannot build the drafter graphs: embedding tensor "${embedding.tensor.name}" has ggml dims [${embedding.tensor.dims}], the config needs [${H}, ${V}] (hidden_size, vocab_size)`,
    );
  }
  const F = DataType.FLOAT, I64 = DataType.INT64;
  const B = "batch", S = "sequence_length", T = "total_sequence_length";

  // fuse.onnx
  const fuse = new GraphBuilder();
  fuse.input({ name: "target_hidden", dataType: F, dims: [B, S, L * Ht] });
  {
    const eps = fuse.floats("rms_eps", [], new Float32Array([c.rms_norm_eps]));
    const [pieces] = fuse.node("Reshape", ["target_hidden", fuse.ints("shape_pieces", [0, 0, L, Ht])]);
    const [flat] = fuse.node("Reshape", [rms(fuse, pieces, eps), fuse.ints("shape_cat", [0, 0, L * Ht])]);
    fuse.node("MatMul", [flat, transposed(fuse, "fc.weight", w["fc.weight"], H, L * Ht)], {}, [
      "hidden_states",
    ]);
    fuse.output({ name: "hidden_states", dataType: F, dims: [B, S, H] });
  }

  const type = "tensor" in embedding ? embedding.tensor.type : GgmlType.F32;
  const q8 = "tensor" in embedding && (type === GgmlType.Q8_0 || type === GgmlType.Q4_0);

  // model.onnx (float32 weights) and model_quantized.onnx (q8 MatMulNBits): one step graph
  const step = (quantized: boolean): GraphBuilder => {
    const g = new GraphBuilder();
    /** MatMulNBits (8-bit, block 32) over `parts` of ggml blocks in `bytes`. */
    const nbits = (x: string, name: string, bytes: Uint8Array, parts: Part[]) =>
      nbitsMatMul(g, x, nbitsInit(g, bytes, parts, name, "split", true), name, Q8_ACCURACY_LEVEL);
    /**
     * `x · Wᵀ` for the nn.Linear weight `w` `[n, k]`: float32 MatMul, or q8 (Q8_0 blocks of w; a
     * row length k that is not whole 32-blocks stays float32).
     */
    const linear = (x: string, name: string, w: Float32Array, n: number, k: number): string => {
      if (!quantized || k % 32) return g.node("MatMul", [x, transposed(g, `${name}.weight`, w, n, k)])[0];
      const bytes = quantize(w, GgmlType.Q8_0);
      return nbits(x, name, bytes, [{ tensor: q8Tensor(name, n, k, bytes) }]);
    };

    g.input({ name: "input_ids", dataType: I64, dims: [B, S] });
    g.input({ name: "hidden_states", dataType: F, dims: [B, S, H] });
    g.input({ name: "attention_mask", dataType: I64, dims: [B, T] });
    g.input({ name: "position_ids", dataType: I64, dims: [B, S] });
    for (const kv of ["key", "value"]) {
      g.input({ name: `past_key_values.0.${kv}`, dataType: F, dims: [B, nKV, "past_sequence_length", D] });
    }
    g.output({ name: "draft_logits", dataType: F, dims: [B, 1, Vd] });
    g.output({ name: "hidden_out", dataType: F, dims: [B, S, H] });
    for (const kv of ["key", "value"]) {
      g.output({ name: `present.0.${kv}`, dataType: F, dims: [B, nKV, T, D] });
    }

    const eps = g.floats("rms_eps", [], new Float32Array([c.rms_norm_eps]));
    const neg = g.floats("mask_value", [], new Float32Array([NEG]));
    const scale = g.floats("attn_scale", [], new Float32Array([1 / Math.sqrt(D)]));
    const invFreq = Float32Array.from({ length: D / 2 }, (_, j) => 1 / Math.pow(c.rope_theta, (2 * j) / D));
    const ax = (name: string, v: number[]) => g.ints(name, v);
    const axM1 = ax("axes_m1", [-1]),
      ax0 = ax("axes_0", [0]),
      ax1 = ax("axes_1", [1]),
      ax2 = ax("axes_2", [2]);
    const zero = g.ints("zero", [0], []), one = g.ints("one", [1], []);
    const vec = (name: string, data: Float32Array) => g.floats(name, [data.length], data);

    // e = E[input_ids]
    let e: string;
    if (q8) {
      const { bytes, tensor } = embedding as { bytes: Uint8Array; tensor: GgufTensorInfo };
      const blocks = H / 32;
      let cached: ReturnType<typeof toNBits8> | undefined;
      const codeTable = () => (cached ??= toNBits8(bytes, tensor));
      const codes = g.initializer({
        name: "embed.codes",
        dataType: DataType.UINT8,
        dims: [V, blocks, 32],
        byteLength: V * H,
        produce: () => codeTable().b,
      });
      const scales = g.initializer({
        name: "embed.scales",
        dataType: F,
        dims: [V, blocks, 1],
        byteLength: 4 * V * blocks,
        produce: () => {
          const out = asBytes(codeTable().scales);
          cached = undefined;
          return out;
        },
      });
      const [rowCodes] = g.node("Gather", [codes, "input_ids"], { axis: 0 }); // [B, S, blocks, 32] uint8
      const [rowScales] = g.node("Gather", [scales, "input_ids"], { axis: 0 }); // [B, S, blocks, 1]
      const [centred] = g.node("Sub", [
        g.node("Cast", [rowCodes], { to: F })[0],
        g.floats("code_zero", [], new Float32Array([128])),
      ]);
      [e] = g.node("Reshape", [g.node("Mul", [centred, rowScales])[0], ax("embed_shape", [0, 0, H])]);
    } else {
      const table = g.initializer({
        name: "embed.weight",
        dataType: F,
        dims: [V, H],
        byteLength: 4 * V * H,
        produce: () =>
          asBytes("data" in embedding ? embedding.data : dequantize(embedding.bytes, embedding.tensor)),
      });
      [e] = g.node("Gather", [table, "input_ids"], { axis: 0 });
    }

    // z = in_proj · concat(e, u) + bias
    const [cat] = g.node("Concat", [e, "hidden_states"], { axis: -1 });
    const [z] = g.node("Add", [
      linear(cat, "in_proj", w["in_proj.weight"], H, 2 * H),
      vec("in_proj.bias", w["in_proj.bias"]),
    ]);

    // rotary tables [B, 1, S, D]
    const [pos] = g.node("Unsqueeze", [g.node("Cast", ["position_ids"], { to: F })[0], axM1]);
    const [freqs] = g.node("Mul", [pos, g.floats("rope_inv_freq", [D / 2], invFreq)]);
    const [angles] = g.node("Concat", [freqs, freqs], { axis: -1 });
    const [cos] = g.node("Unsqueeze", [g.node("Cos", [angles])[0], ax1]);
    const [sin] = g.node("Unsqueeze", [g.node("Sin", [angles])[0], ax1]);

    // mask [B, 1, 1, S, T]: key t visible to query s iff t <= past + s and attention_mask[b, t]
    const [seqLen] = g.node("Shape", ["input_ids"], { start: 1, end: 2 });
    const [totalLen] = g.node("Shape", ["attention_mask"], { start: 1, end: 2 });
    const [t0] = g.node("Squeeze", [totalLen, ax0]);
    const [p0] = g.node("Squeeze", [g.node("Sub", [totalLen, seqLen])[0], ax0]);
    const [causal] = g.node("LessOrEqual", [
      g.node("Unsqueeze", [g.node("Range", [zero, t0, one])[0], ax0])[0],
      g.node("Unsqueeze", [g.node("Range", [p0, t0, one])[0], ax1])[0],
    ]);
    const [pad] = g.node("Unsqueeze", [
      g.node("Cast", ["attention_mask"], { to: DataType.BOOL })[0],
      ax("axes_123", [1, 2, 3]),
    ]);
    const [allowed] = g.node("And", [causal, pad]);

    // the decoder layer
    const hN = rms(g, z, eps, vec("layer.input_norm.weight", w["layer.input_norm.weight"]));
    const qkv = new Float32Array((Q + 2 * KV) * H);
    qkv.set(w["layer.q.weight"]);
    qkv.set(w["layer.k.weight"], Q * H);
    qkv.set(w["layer.v.weight"], (Q + KV) * H);
    const [q, k, v] = g.node(
      "Split",
      [linear(hN, "layer.qkv", qkv, Q + 2 * KV, H), ax("split_qkv", [Q, KV, KV])],
      { axis: -1 },
      3,
    );
    const heads = (y: string, n: number, name: string) =>
      g.node("Transpose", [g.node("Reshape", [y, ax(name, [0, 0, n, D])])[0]], { perm: [0, 2, 1, 3] })[0];
    const qr = rope(g, heads(q, nH, "shape_q"), cos, sin);
    const kr = rope(g, heads(k, nKV, "shape_kv"), cos, sin);
    const [presentK] = g.node("Concat", ["past_key_values.0.key", kr], { axis: 2 }, ["present.0.key"]);
    const [presentV] = g.node("Concat", ["past_key_values.0.value", heads(v, nKV, "shape_v")], { axis: 2 }, [
      "present.0.value",
    ]);
    // grouped-query attention: query head h = kv · rep + r reads key/value head kv
    const [q5] = g.node("Reshape", [
      g.node("Mul", [qr, scale])[0],
      ax("shape_q5", [0, nKV, nH / nKV, -1, D]),
    ]);
    const [k5] = g.node("Transpose", [g.node("Unsqueeze", [presentK, ax2])[0]], { perm: [0, 1, 2, 4, 3] });
    const [scores] = g.node("MatMul", [q5, k5]); // [B, nKV, rep, S, T]
    const [probs] = g.node("Softmax", [g.node("Where", [allowed, scores, neg])[0]], { axis: -1 });
    const [ctx] = g.node("MatMul", [probs, g.node("Unsqueeze", [presentV, ax2])[0]]); // [B, nKV, rep, S, D]
    const [ctxT] = g.node("Transpose", [g.node("Reshape", [ctx, ax("shape_ctx", [0, nH, -1, D])])[0]], {
      perm: [0, 2, 1, 3],
    });
    const [attn] = g.node("Reshape", [ctxT, ax("shape_attn", [0, 0, Q])]);
    const [a] = g.node("Add", [z, linear(attn, "layer.o", w["layer.o.weight"], H, Q)]);
    const m = rms(g, a, eps, vec("layer.post_norm.weight", w["layer.post_norm.weight"]));
    const gu = new Float32Array(2 * I * H);
    gu.set(w["layer.gate.weight"]);
    gu.set(w["layer.up.weight"], I * H);
    const [gate, up] = g.node(
      "Split",
      [linear(m, "layer.gate_up", gu, 2 * I, H), ax("split_gu", [I, I])],
      { axis: -1 },
      2,
    );
    const [act] = g.node("Mul", [g.node("Mul", [gate, g.node("Sigmoid", [gate])[0]])[0], up]);
    g.node("Add", [a, linear(act, "layer.down", w["layer.down.weight"], H, I)], {}, ["hidden_out"]);

    // head: E[d2t] · (rms(g) · norm) at the last position: logits over the draft vocabulary's slots
    const gN = rms(g, "hidden_out", eps, vec("norm.weight", w["norm.weight"]));
    const head = quantized && H % 32 === 0 ? undefined : g.initializer({
      name: "head.weight",
      dataType: F,
      dims: [Vd, H],
      byteLength: 4 * Vd * H,
      produce: () => asBytes(embeddingRows(embedding, H, d2t)),
    });
    // only the last position's logits are needed (the pending feed's and each depth step's)
    const [last] = g.node("Slice", [gN, ax("last_start", [-1]), ax("last_end", [2 ** 62]), ax1]);
    const [flat] = g.node("Reshape", [last, ax("shape_flat", [-1, H])]); // [B, H]
    let draft: string;
    if (head) {
      [draft] = g.node("Gemm", [flat, head], { transB: 1 });
    } else if ("tensor" in embedding && nbitsCompatible(embedding.tensor.type)) {
      // E's own blocks at rows d2t (exact: the float32 head is their dequantization)
      const tensor = { ...embedding.tensor, dims: [H, Vd] };
      draft = nbits(flat, "head", embedding.bytes, [{ tensor, rowOrder: d2t }]);
    } else {
      const bytes = quantize(embeddingRows(embedding, H, d2t), GgmlType.Q8_0);
      draft = nbits(flat, "head", bytes, [{ tensor: q8Tensor("head", Vd, H, bytes) }]);
    }
    g.node("Reshape", [draft, ax("shape_draft", [-1, 1, Vd])], {}, ["draft_logits"]);
    return g;
  };

  return {
    fuse,
    model: step(false),
    quantized: step(true),
    opsets: { "": 17 },
    quantizedOpsets: { "": 17, "com.microsoft": 1 },
    embedding: q8 ? "q8" : "fp32",
    d2t: d2t.slice(),
  };
}

/** What {@linkcode buildEagleFolder} did. */
export interface EagleBuildResult {
  /** Whether the graphs were written now (false: build.json matched, nothing done). */
  built: boolean;
  /** How E is stored in model.onnx. */
  embedding: "q8" | "fp32";
  /** Files written (or verified), relative to the folder, with their sizes in bytes. */
  files: Record<string, number>;
}

/** Options of {@linkcode buildEagleFolder}. */
export interface EagleFolderOptions {
  /** Rebuild even when build.json matches. @default {false} */
  force?: boolean;
}

const BUILD_FORMAT = 3; // 2: model_quantized.onnx; 3: draft_logits (last position) + onnx/draft_vocab.json

/** The built file that maps draft slots to target ids: `{ "draft_vocab_size": n, "d2t": [ids] }`. */
export const DRAFT_VOCAB_FILE = "onnx/draft_vocab.json";
const COPIED = ["tokenizer.json", "tokenizer_config.json", "generation_config.json"];

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

async function readOrUndefined(path: string): Promise<Uint8Array | undefined> {
  try {
    return await Deno.readFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Whether the outputs listed in `manifest.files` are on disk with their sizes and SHA-256. */
async function filesMatch(folder: string, files: Record<string, { bytes: number; sha256: string }>) {
  for (const [name, want] of Object.entries(files)) {
    const bytes = await readOrUndefined(join(folder, name));
    if (!bytes || bytes.length !== want.bytes || await sha256(bytes) !== want.sha256) return false;
  }
  return true;
}

/**
 * Builds a drafter folder's graphs: reads `folder/config.json` and `folder/drafter.safetensors`,
 * takes E from the target's GGUF (`token_embd.weight`), writes `folder/onnx/fuse.onnx`,
 * `folder/onnx/model.onnx`, `folder/onnx/model_quantized.onnx` (q8) and `folder/onnx/draft_vocab.json`
 * (d2t), copies tokenizer.json, tokenizer_config.json and
 * generation_config.json from the target folder (config `target`, beside `folder`), and writes
 * `folder/build.json` last (SHA-256 of the inputs and of every written file). A rerun whose inputs
 * and outputs match build.json does nothing.
 *
 * @param folder The drafter folder, e.g. models/smollm2-eagle.
 * @param gguf The target's GGUF bytes.
 * @param options `force` rebuilds.
 * @returns Whether it built, the embedding form and the files.
 * @throws {TypeError} a bad config, a missing tensor, a GGUF without token_embd.weight.
 * @throws {RangeError} shapes that do not match the config (the message names tensor and shapes).
 * @throws {Deno.errors.NotFound} config.json, drafter.safetensors or a target tokenizer file is missing.
 */
export async function buildEagleFolder(
  folder: string,
  gguf: Uint8Array,
  options: EagleFolderOptions = {},
): Promise<EagleBuildResult> {
  const configBytes = await Deno.readFile(join(folder, "config.json"));
  const drafterBytes = await Deno.readFile(join(folder, "drafter.safetensors"));
  const config = parseEagleConfig(JSON.parse(new TextDecoder().decode(configBytes)));
  const targetFolder = join(folder, "..", config.target);
  const copied: Record<string, Uint8Array> = {};
  for (const name of COPIED) {
    const bytes = await readOrUndefined(join(targetFolder, name));
    if (!bytes) {
      throw new Deno.errors.NotFound(
        `Cannot build the drafter folder ${folder}: the target folder ${targetFolder} has no ${name} (build the target first)`,
      );
    }
    copied[name] = bytes;
  }
  const source: Record<string, string> = {
    "config.json": await sha256(configBytes),
    "drafter.safetensors": await sha256(drafterBytes),
    gguf: await sha256(gguf),
  };
  for (const [name, bytes] of Object.entries(copied)) {
    source[`${config.target}/${name}`] = await sha256(bytes);
  }

  const manifestPath = join(folder, "build.json");
  const old = await readOrUndefined(manifestPath);
  if (old && !options.force) {
    try {
      const m = JSON.parse(new TextDecoder().decode(old));
      if (
        m.format === BUILD_FORMAT && JSON.stringify(m.source) === JSON.stringify(source) &&
        await filesMatch(folder, m.files ?? {})
      ) {
        const files = Object.fromEntries(
          Object.entries(m.files).map(([k, v]) => [k, (v as { bytes: number }).bytes]),
        );
        return { built: false, embedding: m.embedding, files };
      }
    } catch { /* unreadable: rebuild */ }
  }

  const file = parseGguf(gguf);
  const tensor = findTensor(file, "token_embd.weight");
  if (!tensor) {
    throw new TypeError("Cannot build the drafter graphs: the target GGUF has no token_embd.weight");
  }
  const graphs = buildEagleGraphs(config, parseSafetensors(drafterBytes).tensors, { bytes: gguf, tensor });
  await Deno.remove(manifestPath).catch(() => {}); // a half-written folder must not look complete
  await Deno.mkdir(join(folder, "onnx"), { recursive: true });
  const written: Record<string, { bytes: number; sha256: string }> = {};
  const outputs = [
    ["onnx/fuse.onnx", graphs.fuse, graphs.opsets],
    ["onnx/model.onnx", graphs.model, graphs.opsets],
    ["onnx/model_quantized.onnx", graphs.quantized, graphs.quantizedOpsets],
  ] as const;
  for (const [name, graph, opsets] of outputs) {
    const path = join(folder, name);
    await writeModel(`${path}.partial`, graph, { opsets });
    await Deno.rename(`${path}.partial`, path);
    const bytes = await Deno.readFile(path);
    written[name] = { bytes: bytes.length, sha256: await sha256(bytes) };
  }
  const vocabBytes = new TextEncoder().encode(
    JSON.stringify({ draft_vocab_size: graphs.d2t.length, d2t: Array.from(graphs.d2t) }) + "\n",
  );
  await Deno.writeFile(join(folder, DRAFT_VOCAB_FILE), vocabBytes);
  written[DRAFT_VOCAB_FILE] = { bytes: vocabBytes.length, sha256: await sha256(vocabBytes) };
  for (const [name, bytes] of Object.entries(copied)) {
    await Deno.writeFile(join(folder, name), bytes);
    written[name] = { bytes: bytes.length, sha256: await sha256(bytes) };
  }
  await Deno.writeTextFile(
    manifestPath,
    JSON.stringify({ format: BUILD_FORMAT, source, embedding: graphs.embedding, files: written }, null, 2) +
      "\n",
  );
  const files = Object.fromEntries(Object.entries(written).map(([k, v]) => [k, v.bytes]));
  return { built: true, embedding: graphs.embedding, files };
}
