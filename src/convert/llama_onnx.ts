/**
 * The ONNX graph of a Llama-family GGUF in the Optimum / transformers.js decoder layout
 * (`input_ids`, `attention_mask`, `position_ids`, `past_key_values.{i}.key|value` in;
 * `logits`, `present.{i}.key|value` out), meaning what transformers' `LlamaForCausalLM` means:
 * RMSNorm, Hugging Face `rotate_half` RoPE (llama.cpp's q/k row permutation undone), grouped-query
 * attention without materialising repeated K/V, a causal mask combined with `attention_mask`,
 * a SwiGLU MLP, a final norm and the (tied) LM head. Standard ONNX ops at opset 17; the "q4"
 * precision replaces the projections with com.microsoft `MatMulNBits` over the GGUF's own
 * Q4_0 / Q4_1 / Q8_0 blocks (see ./nbits.ts), keeping everything else in float32.
 *
 * @module
 */

import { canDequantize, dequantize } from "./dequant.ts";
import { findTensor, type GgufFile, type GgufTensorInfo, UnsupportedGgufError } from "./gguf.ts";
import { hfRowOrder, type LlamaSpec, llamaSpec } from "./llama_spec.ts";
import { concatNBits, nbitsCompatible, type NBitsWeight, type Q4_1Mode, toNBits } from "./nbits.ts";
import { GgmlType } from "./ggml_types.ts";
import { DataType, GraphBuilder } from "./onnx_writer.ts";

/** Weight precision of a converted graph. */
export type Precision = "fp32" | "q4";

/** Options of {@linkcode buildLlamaGraph}. */
export interface LlamaGraphOptions {
  /** "fp32": every weight dequantized; "q4": MatMulNBits where the GGUF blocks map exactly. */
  precision: Precision;
  /**
   * q4 only: the LM head as "nbits" (MatMulNBits over the Q8_0 / Q4 blocks of output.weight or
   * token_embd) or "fp32" (Gemm sharing the embedding's float32 weights).
   * @default {"fp32"}
   */
  lmHead?: "fp32" | "nbits";
  /** q4 only: how Q4_1 minimums are carried (see {@linkcode Q4_1Mode}). @default {"split"} */
  q4_1?: Q4_1Mode;
}

/** The graph and the opsets it needs. */
export interface LlamaGraph {
  graph: GraphBuilder;
  opsets: Record<string, number>;
  spec: LlamaSpec;
}

const NEG = -3.4028234663852886e38; // float32 lowest: masked scores (no NaN on all-masked rows)

/** One projection: a ggml matrix, optionally with its rows reordered. */
interface Part {
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

/** Adds `x · Wᵀ` for the fused parts; returns the output name. */
function linear(
  g: GraphBuilder,
  bytes: Uint8Array,
  x: string,
  parts: Part[],
  name: string,
  precision: Precision,
  mode: Q4_1Mode,
): string {
  const k = parts[0].tensor.dims[0];
  const n = parts.reduce((a, p) => a + p.tensor.dims[1], 0);
  const type = parts[0].tensor.type;
  if (precision === "q4" && nbitsCompatible(type) && parts.every((p) => p.tensor.type === type)) {
    return nbitsLinear(g, bytes, x, parts, name, mode);
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

/** `MatMulNBits` over the parts' own blocks (+ the Q4_1 `blocksum(x) · mins` term in "split" mode). */
function nbitsLinear(
  g: GraphBuilder,
  bytes: Uint8Array,
  x: string,
  parts: Part[],
  name: string,
  mode: Q4_1Mode,
): string {
  const k = parts[0].tensor.dims[0], blocks = k / 32;
  const n = parts.reduce((a, p) => a + p.tensor.dims[1], 0);
  const type = parts[0].tensor.type, bits = type === GgmlType.Q8_0 ? 8 : 4;
  const split = type === GgmlType.Q4_1 && mode === "split";
  let cached: NBitsWeight | undefined;
  const weight = () => (cached ??= concatNBits(parts.map((p) => toNBits(bytes, p.tensor, p.rowOrder, mode))));
  const pieces: [string, number, number[], number, (w: NBitsWeight) => Float32Array | Uint8Array][] = [
    ["qweight", DataType.UINT8, [n, blocks, (32 * bits) / 8], n * blocks * 4 * bits, (w) => w.b],
    ["scales", DataType.FLOAT, [n * blocks], 4 * n * blocks, (w) => w.scales],
  ];
  if (type === GgmlType.Q4_1 && !split) {
    pieces.push(["zero_points", DataType.FLOAT, [n * blocks], 4 * n * blocks, (w) => w.zeroPoints!]);
  }
  if (split) {
    const zpBytes = n * Math.ceil(blocks / 2);
    pieces.push(["zero_points", DataType.UINT8, [zpBytes], zpBytes, (w) => w.zeroPoints!]);
    pieces.push(["mins", DataType.FLOAT, [blocks, n], 4 * blocks * n, (w) => w.mins!]);
  }
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
  const [y] = g.node(
    "MatMulNBits",
    [x, ...names.slice(0, split ? 3 : names.length)],
    {
      K: k,
      N: n,
      bits,
      block_size: 32,
    },
    1,
    "com.microsoft",
  );
  if (!split) return y;
  // Σ_k x_k (d q_k + m) = MatMulNBits(x) with zero point 0, plus Σ_blocks (Σ_{k in block} x_k) · m
  const [shape] = g.node("Concat", [
    g.node("Shape", [x], { end: -1 })[0],
    g.ints(`${name}.block_shape`, [blocks, 32]),
  ], { axis: 0 });
  const [sums] = g.node("ReduceSum", [g.node("Reshape", [x, shape])[0], g.ints(`${name}.sum_axes`, [-1])], {
    keepdims: 0,
  });
  return g.node("Add", [y, g.node("MatMul", [sums, names[3]])[0]])[0];
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
  const mode = options.q4_1 ?? "split";
  const g = new GraphBuilder();
  const D = s.headDim, nH = s.numHeads, nKV = s.numKvHeads, Q = nH * D, KV = nKV * D;
  const F = DataType.FLOAT, I64 = DataType.INT64;
  g.input({ name: "input_ids", dataType: I64, dims: ["batch_size", "sequence_length"] });
  g.input({ name: "attention_mask", dataType: I64, dims: ["batch_size", "total_sequence_length"] });
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
  const ax123 = ax("axes_123", [1, 2, 3]);
  const zero = g.ints("zero", [0], []), one = g.ints("one", [1], []);
  const qkvSplit = ax("split_qkv", [Q, KV, KV]),
    guSplit = ax("split_gu", [s.intermediateSize, s.intermediateSize]);
  const shapeQ = ax("shape_q", [0, 0, nH, D]), shapeKV = ax("shape_kv", [0, 0, nKV, D]);
  const shapeQ5 = ax("shape_q5", [0, nKV, nH / nKV, -1, D]), shapeCtx = ax("shape_ctx", [0, nH, -1, D]);
  const shapeOut = ax("shape_out", [0, 0, Q]);

  // embedding
  const embed = need(file, "token_embd.weight");
  const embedW = g.initializer({
    name: "token_embd.weight",
    dataType: F,
    dims: [s.vocabSize, s.hiddenSize],
    byteLength: 4 * s.vocabSize * s.hiddenSize,
    produce: () => asBytes(dequantize(bytes, embed)),
  });
  let x = g.node("Gather", [embedW, "input_ids"], { axis: 0 })[0];

  // rotary tables [B, 1, S, D]
  const [pos] = g.node("Unsqueeze", [g.node("Cast", ["position_ids"], { to: F })[0], axM1]);
  const [freqs] = g.node("Mul", [pos, invFreqName]);
  const [angles] = g.node("Concat", [freqs, freqs], { axis: -1 });
  const [cos] = g.node("Unsqueeze", [g.node("Cos", [angles])[0], ax1]);
  const [sin] = g.node("Unsqueeze", [g.node("Sin", [angles])[0], ax1]);

  // mask [B, 1, 1, S, T]: key t visible to query s iff t <= past + s and attention_mask[b, t]
  const [seqLen] = g.node("Shape", ["input_ids"], { start: 1, end: 2 });
  const [totalLen] = g.node("Shape", ["attention_mask"], { start: 1, end: 2 });
  const [pastLen] = g.node("Sub", [totalLen, seqLen]);
  const [t0] = g.node("Squeeze", [totalLen, ax0]);
  const [p0] = g.node("Squeeze", [pastLen, ax0]);
  const [rows] = g.node("Range", [p0, t0, one]);
  const [cols] = g.node("Range", [zero, t0, one]);
  const [causal] = g.node("LessOrEqual", [
    g.node("Unsqueeze", [cols, ax0])[0],
    g.node("Unsqueeze", [rows, ax1])[0],
  ]);
  const [pad] = g.node("Unsqueeze", [g.node("Cast", ["attention_mask"], { to: DataType.BOOL })[0], ax123]);
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
        [linear(g, bytes, h, qkvParts, `${p}.attn.qkv`, precision, mode), qkvSplit],
        {
          axis: -1,
        },
        3,
      );
    } else {
      [q, k, v] = ["q", "k", "v"].map((n, j) =>
        linear(g, bytes, h, [qkvParts[j]], `${p}.attn.${n}`, precision, mode)
      );
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
      linear(g, bytes, attn, [{ tensor: t("attn_output") }], `${p}.attn.o`, precision, mode),
    ])[0];

    const h2 = rmsNorm(g, bytes, x, t("ffn_norm"), eps);
    const guParts: Part[] = [{ tensor: t("ffn_gate") }, { tensor: t("ffn_up") }];
    let gate: string, up: string;
    if (guParts[0].tensor.type === guParts[1].tensor.type) {
      [gate, up] = g.node("Split", [
        linear(g, bytes, h2, guParts, `${p}.mlp.gate_up`, precision, mode),
        guSplit,
      ], {
        axis: -1,
      }, 2);
    } else {
      [gate, up] = ["gate", "up"].map((n, j) =>
        linear(g, bytes, h2, [guParts[j]], `${p}.mlp.${n}`, precision, mode)
      );
    }
    const [act] = g.node("Mul", [g.node("Mul", [gate, g.node("Sigmoid", [gate])[0]])[0], up]);
    x = g.node("Add", [
      x,
      linear(g, bytes, act, [{ tensor: t("ffn_down") }], `${p}.mlp.down`, precision, mode),
    ])[0];
  }

  const hN = rmsNorm(g, bytes, x, need(file, "output_norm.weight"), eps);
  const head = s.tiedEmbeddings ? embed : need(file, "output.weight");
  if (precision === "q4" && options.lmHead === "nbits" && nbitsCompatible(head.type)) {
    linear(g, bytes, hN, [{ tensor: head }], "lm_head", precision, mode);
    const last = g.nodes[g.nodes.length - 1] as { output: string[] };
    last.output = ["logits"];
  } else {
    const headW = s.tiedEmbeddings ? embedW : g.initializer({
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
