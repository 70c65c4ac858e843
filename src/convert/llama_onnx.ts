/**
 * The ONNX graph of a Llama-family GGUF in the Optimum / transformers.js decoder layout
 * (`input_ids`, `attention_mask`, `position_ids`, `past_key_values.{i}.key|value` in;
 * `logits`, `present.{i}.key|value` out), meaning what transformers' `LlamaForCausalLM` means:
 * RMSNorm, Hugging Face `rotate_half` RoPE (llama.cpp's q/k row permutation undone), grouped-query
 * attention without materialising repeated K/V, a causal mask combined with `attention_mask`,
 * a SwiGLU MLP, a final norm and the (tied) LM head. Standard ONNX ops at opset 17; the "q4"
 * precision replaces the projections with com.microsoft `MatMulNBits` over the GGUF's own
 * Q4_0 / Q4_1 / Q8_0 blocks (see ./nbits.ts), keeping everything else in float32. "q8" writes
 * the same blocks as 8-bit `MatMulNBits` codes (no zero-point input, Q4_1 codes centred on the
 * weights, the residual minimums as a `blocksum(x) · mins` term) with `accuracy_level` 4, so that
 * onnxruntime's CPU EP takes its int8 kernel (activations quantized per 32-block to int8, as
 * llama.cpp does; the wasm build computes in float32), and the LM head as 8-bit `MatMulNBits`
 * over the Q8_0 embedding, which the embedding lookup gathers from too (no float32 table).
 *
 * With `attentionMask` "4d" or "any" the graph's `attention_mask` takes a 4D
 * `[batch, 1, sequence_length, total_sequence_length]` mask (tree attention; "any" takes the 2D
 * form too; see {@linkcode LlamaGraphOptions.attentionMask}).
 *
 * @module
 */

import { canDequantize, dequantize } from "./dequant.ts";
import { findTensor, type GgufFile, type GgufTensorInfo, UnsupportedGgufError } from "./gguf.ts";
import { hfRowOrder, type LlamaSpec, llamaSpec } from "./llama_spec.ts";
import { concatNBits, nbitsCompatible, type NBitsWeight, type Q4_1Mode, toNBits, toNBits8 } from "./nbits.ts";
import { GgmlType } from "./ggml_types.ts";
import { DataType, GraphBuilder } from "../onnx/mod.ts";

/** Weight precision of a converted graph. */
export type Precision = "fp32" | "q4" | "q8";

/** Options of {@linkcode buildLlamaGraph}. */
export interface LlamaGraphOptions {
  /**
   * "fp32": every weight dequantized; "q4": MatMulNBits where the GGUF blocks map exactly; "q8":
   * the same as 8-bit MatMulNBits (see the module doc).
   */
  precision: Precision;
  /**
   * q4 / q8: the LM head as "nbits" (MatMulNBits over the Q8_0 / Q4 blocks of output.weight or
   * token_embd; in q8 a tied Q8_0 / Q4_0 embedding is then gathered from the same codes) or
   * "fp32" (Gemm sharing the embedding's float32 weights).
   * @default {"fp32" for q4, "nbits" for q8}
   */
  lmHead?: "fp32" | "nbits";
  /** q4 only: how Q4_1 minimums are carried (see {@linkcode Q4_1Mode}). @default {"split"} */
  q4_1?: Q4_1Mode;
  /** q8 only: "nbits" (8-bit MatMulNBits) or "integer" (DynamicQuantizeLinear + MatMulInteger). @default {"nbits"} */
  q8Form?: "nbits" | "integer";
  /**
   * MatMulNBits' accuracy_level: 0 float32 compute; 4 int8 activations where onnxruntime has the
   * kernel (its CPU EP; q4's uncentred split codes lose more there than q8's). @default {4 for q8, 0 for q4}
   */
  accuracyLevel?: number;
  /**
   * The `attention_mask` input. "2d": `[batch, total_sequence_length]`, 1 = may attend (the
   * causal rule added), exactly the Optimum interface. "4d": `[batch, 1, sequence_length,
   * total_sequence_length]` int64, entry `[b, 0, s, t]` = 1 lets query `s` attend to key `t`,
   * ANDed with the causal rule (key `t` ≤ past + `s`): one row can then score a token tree (tree
   * attention). "any": declared without a shape and taking either form (the 2D form computes what
   * the "2d" graph does), so Optimum-style callers such as transformers.js still run the graph.
   * @default {"2d"}
   */
  attentionMask?: AttentionMaskForm;
  /**
   * Decoder layers whose output (the residual stream after layer i, before the next layer's norm;
   * for the last layer: before the final norm) the graph also returns as `hidden_states.{i}`
   * `[batch_size, sequence_length, hidden_size]` float32: the target features a feature drafter
   * (EAGLE) reads. Opt-in; graphs without it are unchanged.
   * @default {[]}
   */
  hiddenStates?: readonly number[];
}

/** Forms the graph's `attention_mask` input takes (see {@linkcode LlamaGraphOptions.attentionMask}). */
export type AttentionMaskForm = "2d" | "4d" | "any";

/** The graph and the opsets it needs. */
export interface LlamaGraph {
  graph: GraphBuilder;
  opsets: Record<string, number>;
  spec: LlamaSpec;
}

const NEG = -3.4028234663852886e38; // float32 lowest: masked scores (no NaN on all-masked rows)

/** One projection: a ggml matrix, optionally with its rows reordered. */
export interface Part {
  tensor: GgufTensorInfo;
  rowOrder?: Int32Array;
}

function need(file: GgufFile, name: string): GgufTensorInfo {
  return findTensor(file, name)!; // llamaSpec checked the tensor set
}

/** Float32 `[K, ΣN]` (MatMul layout) of the parts, rows reordered and transposed. */
function fp32Matrix(bytes: Uint8Array, parts: Part[]): Float32Array {
  const k = parts[0].tensor.dims[0];
  const total = parts.reduce((a, p) => a + p.tensor.dims[1], 0);
  const out = new Float32Array(k * total);
  let col = 0;
  for (const { tensor, rowOrder } of parts) {
    const w = dequantize(bytes, tensor); // [N, K]
    const n = tensor.dims[1];
    for (let r = 0; r < n; r++) {
      const src = (rowOrder ? rowOrder[r] : r) * k;
      for (let c = 0; c < k; c++) out[c * total + col + r] = w[src + c];
    }
    col += n;
  }
  return out;
}

function asBytes(x: Float32Array | Uint8Array): Uint8Array {
  return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
}

/** How {@linkcode linear} writes a projection. */
interface LinearOptions {
  precision: Precision;
  mode: Q4_1Mode;
  q8Form: "nbits" | "integer";
  accuracyLevel: number;
}

/** Adds `x · Wᵀ` for the fused parts; returns the output name. */
function linear(
  g: GraphBuilder,
  bytes: Uint8Array,
  x: string,
  parts: Part[],
  name: string,
  o: LinearOptions,
): string {
  const k = parts[0].tensor.dims[0];
  const n = parts.reduce((a, p) => a + p.tensor.dims[1], 0);
  const type = parts[0].tensor.type;
  if (o.precision !== "fp32" && nbitsCompatible(type) && parts.every((p) => p.tensor.type === type)) {
    if (o.precision === "q8" && o.q8Form === "integer") return integerLinear(g, bytes, x, parts, name);
    const w = nbitsInit(g, bytes, parts, name, o.mode, o.precision === "q8");
    return nbitsMatMul(g, x, w, name, o.accuracyLevel);
  }
  const w = g.initializer({
    name: `${name}.weight`,
    dataType: DataType.FLOAT,
    dims: [k, n],
    byteLength: 4 * k * n,
    produce: () => asBytes(fp32Matrix(bytes, parts)),
  });
  return g.node("MatMul", [x, w])[0];
}

/** The initializers of one `MatMulNBits` projection and how to call it. */
export interface NBitsInit {
  k: number;
  n: number;
  bits: 4 | 8;
  /** qweight, scales, then the zero points if any (the op's inputs 1..3). */
  inputs: string[];
  /** The split Q4_1 minimums `[K / 32, N]` (added as `blocksum(x) · mins`), if any. */
  mins?: string;
}

/**
 * The `MatMulNBits` weights of the parts, from their own blocks: 4-bit (q4: Q4_1 minimums split
 * out in "split" mode) or, in q8, every block type as 8-bit codes ({@linkcode toNBits8}).
 * Also used by the feature drafter's q8 graph (./eagle_onnx.ts).
 */
export function nbitsInit(
  g: GraphBuilder,
  bytes: Uint8Array,
  parts: Part[],
  name: string,
  mode: Q4_1Mode,
  eight: boolean,
): NBitsInit {
  const k = parts[0].tensor.dims[0], blocks = k / 32;
  const n = parts.reduce((a, p) => a + p.tensor.dims[1], 0);
  const type = parts[0].tensor.type, bits = eight || type === GgmlType.Q8_0 ? 8 : 4;
  const split = type === GgmlType.Q4_1 && (eight || mode === "split");
  let cached: NBitsWeight | undefined;
  const weight = () => (cached ??= concatNBits(
    parts.map((p) =>
      eight ? toNBits8(bytes, p.tensor, p.rowOrder) : toNBits(bytes, p.tensor, p.rowOrder, mode)
    ),
  ));
  const pieces: [string, number, number[], number, (w: NBitsWeight) => Float32Array | Uint8Array][] = [
    ["qweight", DataType.UINT8, [n, blocks, (32 * bits) / 8], n * blocks * 4 * bits, (w) => w.b],
    ["scales", DataType.FLOAT, [n * blocks], 4 * n * blocks, (w) => w.scales],
  ];
  if (type === GgmlType.Q4_1 && !split) {
    pieces.push(["zero_points", DataType.FLOAT, [n * blocks], 4 * n * blocks, (w) => w.zeroPoints!]);
  }
  if (split && !eight) {
    const zpBytes = n * Math.ceil(blocks / 2);
    pieces.push(["zero_points", DataType.UINT8, [zpBytes], zpBytes, (w) => w.zeroPoints!]);
  }
  if (split) pieces.push(["mins", DataType.FLOAT, [blocks, n], 4 * blocks * n, (w) => w.mins!]);
  const names = pieces.map(([suffix, dataType, dims, byteLength, pick], i) =>
    g.initializer({
      name: `${name}.${suffix}`,
      dataType,
      dims,
      byteLength,
      produce: () => {
        const out = asBytes(pick(weight()));
        if (i === pieces.length - 1) cached = undefined; // written in order: the last one frees it
        return out;
      },
    })
  );
  return split
    ? { k, n, bits, inputs: names.slice(0, -1), mins: names[names.length - 1] }
    : { k, n, bits, inputs: names };
}

/** `x · Wᵀ` through `MatMulNBits` (+ the split minimums term). */
export function nbitsMatMul(
  g: GraphBuilder,
  x: string,
  w: NBitsInit,
  name: string,
  accuracyLevel: number,
): string {
  const [y] = g.node(
    "MatMulNBits",
    [x, ...w.inputs],
    {
      K: w.k,
      N: w.n,
      bits: w.bits,
      block_size: 32,
      ...(accuracyLevel ? { accuracy_level: accuracyLevel } : {}),
    },
    1,
    "com.microsoft",
  );
  return w.mins ? addBlockMins(g, x, y, w.mins, name, w.k / 32) : y;
}

/** `y + Σ_blocks (Σ_{k in block} x_k) · mins[block]`: the Q4_1 minimums of a split weight. */
function addBlockMins(
  g: GraphBuilder,
  x: string,
  y: string,
  mins: string,
  name: string,
  blocks: number,
): string {
  // Σ_k x_k (d q_k + m) = MatMulNBits(x) with zero point 0, plus Σ_blocks (Σ_{k in block} x_k) · m
  const [shape] = g.node("Concat", [
    g.node("Shape", [x], { end: -1 })[0],
    g.ints(`${name}.block_shape`, [blocks, 32]),
  ], { axis: 0 });
  const [sums] = g.node("ReduceSum", [g.node("Reshape", [x, shape])[0], g.ints(`${name}.sum_axes`, [-1])], {
    keepdims: 0,
  });
  return g.node("Add", [y, g.node("MatMul", [sums, mins])[0]])[0];
}

/**
 * q8 as onnxruntime's `quantize_dynamic` form, with the GGUF's block scales kept: x quantized by
 * `DynamicQuantizeLinear` (uint8, one scale per tensor: not exact), then per 32-element block a
 * `MatMulInteger` with the int8 codes, scaled by the block scales and summed over blocks
 * (+ the Q4_1 minimums term on float x). A measured candidate, not the default.
 */
function integerLinear(g: GraphBuilder, bytes: Uint8Array, x: string, parts: Part[], name: string): string {
  const k = parts[0].tensor.dims[0], blocks = k / 32;
  const n = parts.reduce((a, p) => a + p.tensor.dims[1], 0);
  const q41 = parts[0].tensor.type === GgmlType.Q4_1;
  let cached: NBitsWeight | undefined;
  const weight = () => (cached ??= concatNBits(parts.map((p) => toNBits8(bytes, p.tensor, p.rowOrder))));
  const codes = g.initializer({
    name: `${name}.codes`,
    dataType: DataType.INT8,
    dims: [blocks, 32, n],
    byteLength: blocks * 32 * n,
    produce: () => {
      const w = weight(), out = new Uint8Array(blocks * 32 * n); // int8 bytes: code − 128
      for (let r = 0; r < n; r++) {
        for (let b = 0; b < blocks; b++) {
          for (let e = 0; e < 32; e++) {
            out[(b * 32 + e) * n + r] = (w.b[(r * blocks + b) * 32 + e] - 128) & 0xff;
          }
        }
      }
      return out;
    },
  });
  const scales = g.initializer({
    name: `${name}.scales`,
    dataType: DataType.FLOAT,
    dims: [blocks, 1, n],
    byteLength: 4 * blocks * n,
    produce: () => {
      const w = weight(), out = new Float32Array(blocks * n);
      for (let r = 0; r < n; r++) for (let b = 0; b < blocks; b++) out[b * n + r] = w.scales[r * blocks + b];
      if (!q41) cached = undefined;
      return asBytes(out);
    },
  });
  const mins = q41
    ? g.initializer({
      name: `${name}.mins`,
      dataType: DataType.FLOAT,
      dims: [blocks, n],
      byteLength: 4 * blocks * n,
      produce: () => {
        const out = asBytes(weight().mins!);
        cached = undefined;
        return out;
      },
    })
    : undefined;
  const [qx, sx, zx] = g.node("DynamicQuantizeLinear", [x], {}, 3);
  const [qt] = g.node(
    "Transpose",
    [g.node("Reshape", [qx, g.ints(`${name}.blocks3`, [-1, blocks, 32])])[0]],
    {
      perm: [1, 0, 2],
    },
  );
  const [acc] = g.node("MatMulInteger", [qt, codes, zx]); // [blocks, M, N] int32
  const [scaled] = g.node("Mul", [g.node("Cast", [acc], { to: DataType.FLOAT })[0], scales]);
  const [sum] = g.node("ReduceSum", [scaled, g.ints(`${name}.axes0`, [0])], { keepdims: 0 });
  const [shape] = g.node("Concat", [g.node("Shape", [x], { end: -1 })[0], g.ints(`${name}.n`, [n])], {
    axis: 0,
  });
  const [y] = g.node("Reshape", [g.node("Mul", [sum, sx])[0], shape]);
  return mins ? addBlockMins(g, x, y, mins, name, blocks) : y;
}

function rmsNorm(g: GraphBuilder, bytes: Uint8Array, x: string, weight: GgufTensorInfo, eps: string): string {
  const w = g.initializer({
    name: weight.name,
    dataType: DataType.FLOAT,
    dims: [weight.dims[0]],
    byteLength: 4 * weight.dims[0],
    produce: () => asBytes(dequantize(bytes, weight)),
  });
  const [sq] = g.node("Mul", [x, x]);
  const [ms] = g.node("ReduceMean", [sq], { axes: [-1], keepdims: 1 });
  const [rms] = g.node("Sqrt", g.node("Add", [ms, eps]));
  return g.node("Mul", [g.node("Div", [x, rms])[0], w])[0];
}

function rope(g: GraphBuilder, x: string, cos: string, sin: string): string {
  const [x1, x2] = g.node("Split", [x], { axis: -1 }, 2);
  const [rot] = g.node("Concat", [g.node("Neg", [x2])[0], x1], { axis: -1 });
  return g.node("Add", [g.node("Mul", [x, cos])[0], g.node("Mul", [rot, sin])[0]])[0];
}

/**
 * Builds the decoder graph of a Llama GGUF. Weights stay lazy (made while the file is written).
 *
 * @throws {UnsupportedGgufError} not a dense Llama, or a tensor type that cannot be dequantized.
 * @throws {InvalidGgufError} missing metadata or tensors of the wrong shape.
 */
export function buildLlamaGraph(file: GgufFile, bytes: Uint8Array, options: LlamaGraphOptions): LlamaGraph {
  const s = llamaSpec(file);
  for (const t of file.tensors) {
    if (!canDequantize(t.type)) {
      throw new UnsupportedGgufError(
        `Tensor "${t.name}" has ggml type ${t.typeName}, which cannot be converted (F32, F16, BF16, Q8_0, Q4_0, Q4_1 can)`,
      );
    }
  }
  const { precision } = options;
  const mask = options.attentionMask ?? "2d";
  if (mask !== "2d" && mask !== "4d" && mask !== "any") {
    throw new RangeError(
      `Cannot build the graph: attentionMask must be "2d", "4d" or "any", got ${JSON.stringify(mask)}`,
    );
  }
  const hiddenStates = options.hiddenStates ?? [];
  for (const i of hiddenStates) {
    if (!Number.isInteger(i) || i < 0 || i >= s.numLayers) {
      throw new RangeError(
        `Cannot build the graph: hiddenStates must hold layer indices in [0, ${s.numLayers - 1}], got ${i}`,
      );
    }
  }
  if (new Set(hiddenStates).size !== hiddenStates.length) {
    throw new RangeError(`Cannot build the graph: hiddenStates repeats a layer (${hiddenStates.join(", ")})`);
  }
  const mode = options.q4_1 ?? "split";
  const lin: LinearOptions = {
    precision,
    mode,
    q8Form: options.q8Form ?? "nbits",
    accuracyLevel: options.accuracyLevel ?? (precision === "q8" ? 4 : 0),
  };
  const g = new GraphBuilder();
  const D = s.headDim, nH = s.numHeads, nKV = s.numKvHeads, Q = nH * D, KV = nKV * D;
  const F = DataType.FLOAT, I64 = DataType.INT64;
  g.input({ name: "input_ids", dataType: I64, dims: ["batch_size", "sequence_length"] });
  g.input({
    name: "attention_mask",
    dataType: I64,
    dims: mask === "any"
      ? null
      : mask === "4d"
      ? ["batch_size", 1, "sequence_length", "total_sequence_length"]
      : ["batch_size", "total_sequence_length"],
  });
  g.input({ name: "position_ids", dataType: I64, dims: ["batch_size", "sequence_length"] });
  for (let i = 0; i < s.numLayers; i++) {
    for (const kv of ["key", "value"]) {
      g.input({
        name: `past_key_values.${i}.${kv}`,
        dataType: F,
        dims: ["batch_size", nKV, "past_sequence_length", D],
      });
    }
  }
  g.output({ name: "logits", dataType: F, dims: ["batch_size", "sequence_length", s.vocabSize] });

  // constants
  const eps = g.floats("rms_eps", [], new Float32Array([s.rmsNormEps]));
  const neg = g.floats("mask_value", [], new Float32Array([NEG]));
  const scale = g.floats("attn_scale", [], new Float32Array([1 / Math.sqrt(D)]));
  const invFreq = new Float32Array(D / 2);
  for (let j = 0; j < D / 2; j++) invFreq[j] = 1 / Math.pow(s.ropeTheta, (2 * j) / D);
  const invFreqName = g.floats("rope_inv_freq", [D / 2], invFreq);
  const ax = (name: string, v: number[]) => g.ints(name, v);
  const axM1 = ax("axes_m1", [-1]), ax0 = ax("axes_0", [0]), ax1 = ax("axes_1", [1]), ax2 = ax("axes_2", [2]);
  const zero = g.ints("zero", [0], []), one = g.ints("one", [1], []);
  const qkvSplit = ax("split_qkv", [Q, KV, KV]),
    guSplit = ax("split_gu", [s.intermediateSize, s.intermediateSize]);
  const shapeQ = ax("shape_q", [0, 0, nH, D]), shapeKV = ax("shape_kv", [0, 0, nKV, D]);
  const shapeQ5 = ax("shape_q5", [0, nKV, nH / nKV, -1, D]), shapeCtx = ax("shape_ctx", [0, nH, -1, D]);
  const shapeOut = ax("shape_out", [0, 0, Q]);

  // embedding (q8 with a tied Q8_0 / Q4_0 head: gathered from the head's 8-bit codes, exact)
  const embed = need(file, "token_embd.weight");
  const head = s.tiedEmbeddings ? embed : need(file, "output.weight");
  const lmHead = options.lmHead ?? (precision === "q8" ? "nbits" : "fp32");
  const nbitsHead = precision !== "fp32" && lmHead === "nbits" && nbitsCompatible(head.type);
  const headInit = nbitsHead && precision === "q8" && lin.q8Form === "nbits"
    ? nbitsInit(g, bytes, [{ tensor: head }], "lm_head", mode, true)
    : undefined;
  let embedW: string | undefined;
  let x: string;
  if (headInit && s.tiedEmbeddings && head.type !== GgmlType.Q4_1) {
    const [qweight, scales] = headInit.inputs, blocks = s.hiddenSize / 32;
    const [codes] = g.node("Gather", [qweight, "input_ids"], { axis: 0 }); // [B, S, blocks, 32] uint8
    const [blockScales] = g.node("Gather", [
      g.node("Reshape", [scales, ax("embed_scale_shape", [s.vocabSize, blocks, 1])])[0],
      "input_ids",
    ], { axis: 0 });
    const [centred] = g.node("Sub", [
      g.node("Cast", [codes], { to: F })[0],
      g.floats("code_zero", [], new Float32Array([128])),
    ]);
    x = g.node("Reshape", [
      g.node("Mul", [centred, blockScales])[0],
      ax("embed_shape", [0, 0, s.hiddenSize]),
    ])[0];
  } else {
    embedW = g.initializer({
      name: "token_embd.weight",
      dataType: F,
      dims: [s.vocabSize, s.hiddenSize],
      byteLength: 4 * s.vocabSize * s.hiddenSize,
      produce: () => asBytes(dequantize(bytes, embed)),
    });
    x = g.node("Gather", [embedW, "input_ids"], { axis: 0 })[0];
  }

  // rotary tables [B, 1, S, D]
  const [pos] = g.node("Unsqueeze", [g.node("Cast", ["position_ids"], { to: F })[0], axM1]);
  const [freqs] = g.node("Mul", [pos, invFreqName]);
  const [angles] = g.node("Concat", [freqs, freqs], { axis: -1 });
  const [cos] = g.node("Unsqueeze", [g.node("Cos", [angles])[0], ax1]);
  const [sin] = g.node("Unsqueeze", [g.node("Sin", [angles])[0], ax1]);

  // mask [B, 1, 1, S, T]: key t visible to query s iff t <= past + s and attention_mask[b, t]
  // (2D) or attention_mask[b, 0, s, t] (4D; see LlamaGraphOptions.attentionMask)
  const [seqLen] = g.node("Shape", ["input_ids"], { start: 1, end: 2 });
  const [totalLen] = g.node(
    "Shape",
    ["attention_mask"],
    mask === "2d" ? { start: 1, end: 2 } : { start: -1 },
  );
  const [pastLen] = g.node("Sub", [totalLen, seqLen]);
  const [t0] = g.node("Squeeze", [totalLen, ax0]);
  const [p0] = g.node("Squeeze", [pastLen, ax0]);
  const [rows] = g.node("Range", [p0, t0, one]);
  const [cols] = g.node("Range", [zero, t0, one]);
  const [causal] = g.node("LessOrEqual", [
    g.node("Unsqueeze", [cols, ax0])[0],
    g.node("Unsqueeze", [rows, ax1])[0],
  ]);
  let pad: string;
  if (mask !== "2d") {
    // [B, T] or [B, 1, S, T] → [B, 1 or S, T] → [B, 1, 1, 1 or S, T]
    const [shape3] = g.node("Concat", [ax("mask_shape_b", [0, -1]), totalLen], { axis: 0 });
    const [mask3] = g.node("Reshape", [g.node("Cast", ["attention_mask"], { to: DataType.BOOL })[0], shape3]);
    [pad] = g.node("Unsqueeze", [mask3, ax("axes_12", [1, 2])]);
  } else {
    [pad] = g.node("Unsqueeze", [
      g.node("Cast", ["attention_mask"], { to: DataType.BOOL })[0],
      ax("axes_123", [1, 2, 3]),
    ]);
  }
  const [allowed] = g.node("And", [causal, pad]);

  const qOrder = hfRowOrder(nH, D), kOrder = hfRowOrder(nKV, D);
  for (let i = 0; i < s.numLayers; i++) {
    const t = (n: string) => need(file, `blk.${i}.${n}.weight`);
    const p = `layers.${i}`;
    const h = rmsNorm(g, bytes, x, t("attn_norm"), eps);
    const qkvParts: Part[] = [
      { tensor: t("attn_q"), rowOrder: qOrder },
      { tensor: t("attn_k"), rowOrder: kOrder },
      { tensor: t("attn_v") },
    ];
    const fused = qkvParts.every((part) => part.tensor.type === qkvParts[0].tensor.type);
    let q: string, k: string, v: string;
    if (fused) {
      [q, k, v] = g.node(
        "Split",
        [linear(g, bytes, h, qkvParts, `${p}.attn.qkv`, lin), qkvSplit],
        {
          axis: -1,
        },
        3,
      );
    } else {
      [q, k, v] = ["q", "k", "v"].map((n, j) => linear(g, bytes, h, [qkvParts[j]], `${p}.attn.${n}`, lin));
    }
    const heads = (y: string, shape: string) =>
      g.node("Transpose", [g.node("Reshape", [y, shape])[0]], { perm: [0, 2, 1, 3] })[0];
    const qr = rope(g, heads(q, shapeQ), cos, sin);
    const kr = rope(g, heads(k, shapeKV), cos, sin);
    const [presentK] = g.node("Concat", [`past_key_values.${i}.key`, kr], { axis: 2 }, [`present.${i}.key`]);
    const [presentV] = g.node("Concat", [`past_key_values.${i}.value`, heads(v, shapeKV)], { axis: 2 }, [
      `present.${i}.value`,
    ]);
    for (const kv of ["key", "value"]) {
      g.output({
        name: `present.${i}.${kv}`,
        dataType: F,
        dims: ["batch_size", nKV, "total_sequence_length", D],
      });
    }
    // grouped-query attention: query head h = kv · rep + r reads key/value head kv
    const [q5] = g.node("Reshape", [g.node("Mul", [qr, scale])[0], shapeQ5]); // [B, nKV, rep, S, D]
    const [k5] = g.node("Transpose", [g.node("Unsqueeze", [presentK, ax2])[0]], { perm: [0, 1, 2, 4, 3] });
    const [scores] = g.node("MatMul", [q5, k5]); // [B, nKV, rep, S, T]
    const [probs] = g.node("Softmax", [g.node("Where", [allowed, scores, neg])[0]], { axis: -1 });
    const [ctx] = g.node("MatMul", [probs, g.node("Unsqueeze", [presentV, ax2])[0]]); // [B, nKV, rep, S, D]
    const [ctxT] = g.node("Transpose", [g.node("Reshape", [ctx, shapeCtx])[0]], { perm: [0, 2, 1, 3] });
    const [attn] = g.node("Reshape", [ctxT, shapeOut]);
    x = g.node("Add", [
      x,
      linear(g, bytes, attn, [{ tensor: t("attn_output") }], `${p}.attn.o`, lin),
    ])[0];

    const h2 = rmsNorm(g, bytes, x, t("ffn_norm"), eps);
    const guParts: Part[] = [{ tensor: t("ffn_gate") }, { tensor: t("ffn_up") }];
    let gate: string, up: string;
    if (guParts[0].tensor.type === guParts[1].tensor.type) {
      [gate, up] = g.node("Split", [
        linear(g, bytes, h2, guParts, `${p}.mlp.gate_up`, lin),
        guSplit,
      ], {
        axis: -1,
      }, 2);
    } else {
      [gate, up] = ["gate", "up"].map((n, j) => linear(g, bytes, h2, [guParts[j]], `${p}.mlp.${n}`, lin));
    }
    const [act] = g.node("Mul", [g.node("Mul", [gate, g.node("Sigmoid", [gate])[0]])[0], up]);
    x = g.node("Add", [
      x,
      linear(g, bytes, act, [{ tensor: t("ffn_down") }], `${p}.mlp.down`, lin),
    ])[0];
    if (hiddenStates.includes(i)) {
      g.node("Identity", [x], {}, [`hidden_states.${i}`]);
      g.output({
        name: `hidden_states.${i}`,
        dataType: F,
        dims: ["batch_size", "sequence_length", s.hiddenSize],
      });
    }
  }

  const hN = rmsNorm(g, bytes, x, need(file, "output_norm.weight"), eps);
  if (nbitsHead) {
    if (headInit) nbitsMatMul(g, hN, headInit, "lm_head", lin.accuracyLevel);
    else linear(g, bytes, hN, [{ tensor: head }], "lm_head", lin);
    const last = g.nodes[g.nodes.length - 1] as { output: string[] };
    last.output = ["logits"];
  } else {
    const headW = s.tiedEmbeddings && embedW ? embedW : g.initializer({
      name: "output.weight",
      dataType: F,
      dims: [s.vocabSize, s.hiddenSize],
      byteLength: 4 * s.vocabSize * s.hiddenSize,
      produce: () => asBytes(dequantize(bytes, head)),
    });
    const [flat] = g.node("Reshape", [hN, ax("shape_flat", [-1, s.hiddenSize])]);
    const [gemm] = g.node("Gemm", [flat, headW], { transB: 1 });
    const [outShape] = g.node("Concat", [
      g.node("Shape", ["input_ids"])[0],
      ax("vocab_dim", [s.vocabSize]),
    ], { axis: 0 });
    g.node("Reshape", [gemm, outShape], {}, ["logits"]);
  }
  const opsets: Record<string, number> = { "": 17 };
  if (g.nodes.some((n) => (n as { domain: string }).domain === "com.microsoft")) opsets["com.microsoft"] = 1;
  return { graph: g, opsets, spec: s };
}
