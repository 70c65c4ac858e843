/**
 * The graph-reading half that the kernel backend's model families share: which initializer of an
 * ONNX decoder graph is which weight, worked out from the graph's data flow (not from initializer
 * names, which torch exports leave anonymous for the projections: `onnx::MatMul_962`), checked
 * against the config, and returned as float32 in one layout: every linear layer `[in, out]`
 * row-major (`y = x · W`). A weight stored that way, 4-byte aligned, is a view of the file's bytes
 * (treat it as read-only); split, transposed, fp16 or unaligned ones are copies.
 *
 * Here: the graph index (its projections), tensors, norms, biases, the token embedding, the LM
 * head and a draft's vocabulary subset, and exposed hidden states. Each family's reader puts a
 * block together from them (`gpt2GraphWeights` in families/gpt2.ts, `llamaGraphWeights` in
 * families/llama.ts, each beside its family's forward recipe).
 *
 * What is read from where:
 * - projections: the MatMul / Gemm nodes whose weight is a rank-2 float tensor of the graph
 *   (possibly through a Transpose, or Gemm `transB`), in node order; fused projections (one MatMul
 *   then a Split, as ../convert/llama_onnx.ts writes q|k|v and gate|up) are split by the Split's
 *   sizes. Llama's q / k / v are told apart by where their outputs go (`present.N.key`,
 *   `present.N.value`, neither), gate / up by which output reaches a Sigmoid (SiLU);
 * - norms: the LayerNormalization (GPT-2) or the `x · rsqrt(mean(x²) + eps) · w` Mul (Llama)
 *   feeding each projection, with its epsilon;
 * - biases: the Add of a rank-1 tensor right after a projection (Gemm: its C input);
 * - embeddings: the Gather of `input_ids` (and, GPT-2, the other Gather: positions); the LM head:
 *   the last projection, tied when its weight is the embedding tensor itself;
 * - a vocabulary subset (Llama): the embedding Gather indexed by `Gather(map, input_ids)` with
 *   `map` a `[vocab]` int tensor (token id → one of R embedding rows); the tied head then scores
 *   all R rows, a `Slice` keeps the first H, and a `ScatterElements` writes them at the token ids
 *   of an int tensor into a `[…, vocab]` `ConstantOfShape` row (its `value` fills the rest);
 * - RoPE: its style from the rotation the graph applies to q and k (a `rotate_half` Split / Neg /
 *   Concat or Slice, a constant signed-permutation MatMul, or a RotaryEmbedding node) and its
 *   frequencies from the constant feeding the Cos table;
 * - exposed hidden states: graph outputs `hidden_states.{i}` (../convert/llama_onnx.ts'
 *   `hiddenStates` option: an Identity of the residual stream after layer i), each checked to be
 *   that residual: an Add whose nearest projection upstream is layer i's MLP down projection and
 *   which feeds a norm (not only a further Add, as a bias or block-minimum Add would).
 *
 * @module
 */

import type { ModelConfig } from "../../model/config.ts";
import { InvalidModelError } from "../../model/errors.ts";
import { DataType } from "../../onnx/data_types.ts";
import type { OnnxGraph, OnnxInitializer, OnnxNode } from "../../onnx/graph.ts";
import {
  elementCount,
  formatDims,
  type GraphIndex,
  halfToFloat,
  indexGraph,
  intValues,
  isFloatTensor,
  onlyUse,
  ownBuffer,
  PASS_THROUGH,
  sourceOf,
  tensorOf,
  upThrough,
} from "../../onnx/queries.ts";
import type { LinearWeight } from "./q8_weight.ts";

/** An LM head weight: `[vocab, hidden]` ("vocab-major", logits = x · Wᵀ) or `[hidden, vocab]` ("in-out"). */

/**
 * An LM head weight: `[vocab, hidden]` ("vocab-major", logits = x · Wᵀ) or `[hidden, vocab]`
 * ("in-out"); `L` is the linear weight's form (float32, or 8-bit blocks in an 8-bit graph).
 */
export interface HeadWeight<L extends LinearWeight = Float32Array> {
  /** The weight; for a tied head the very embedding array (same object, no copy). */
  weight: L;
  /** "vocab-major": `[vocab, hidden]` row-major; "in-out": `[hidden, vocab]` row-major. */
  layout: "vocab-major" | "in-out";
  /** Whether the head is the token embedding (tied weights). */
  tied: boolean;
}

/** A weight with a bias: `weight` `[in, out]` (or `[n]` for a norm) and `bias` `[out]`. */
export interface WeightAndBias {
  /** Weight: `[in, out]` row-major for a linear layer, `[n]` for a LayerNorm scale. */
  weight: Float32Array;
  /** Bias `[out]` (`[n]` for a LayerNorm shift). */
  bias: Float32Array;
}

/**
 * A vocabulary subset: token id → embedding row, and the head's rows → token ids (others get
 * `fill`). Logits: `logit[headIds[i]] = x · embed[i]` for i < headIds.length, `fill` elsewhere.
 */
export interface VocabSubset {
  /** `[vocab]` the embedding row of each token id (rows = max + 1). */
  inMap: Int32Array;
  /** `[headRows]` the token id of head row i (rows 0 … headRows − 1 of the embedding); distinct. */
  headIds: Int32Array;
  /** The logit of every token not in `headIds` (the graph's ConstantOfShape value, e.g. −∞). */
  fill: number;
}

/** What a family's graph reader checks beyond the config. */
export interface TransformerWeightsOptions {
  /**
   * The MLP width (`n_inner` / `intermediate_size`) the config declares, when known: checked
   * against the graph. Without it the graph's width is taken, consistent across layers.
   */
  intermediateSize?: number;
}

// ---------------------------------------------------------------------------------------------
// Graph index and tensor helpers

/** Ops of quantized projections this reader does not dequantize. */
const QUANTIZED = new Set([
  "MatMulNBits",
  "MatMulInteger",
  "QLinearMatMul",
  "DequantizeLinear",
  "DynamicQuantizeLinear",
  "GatherBlockQuantized",
  "MatMulIntegerToFloat",
  "DynamicQuantizeMatMul",
]);

/** A projection node: `y = x · W (+ b)` with `W` a float tensor of the graph. */
export interface Linear {
  node: OnnxNode;
  /** The activation input. */
  input: string;
  /** The output value (before any bias Add). */
  output: string;
  /** The stored weight tensor. */
  init: OnnxInitializer;
  /** The stored tensor is `[out, in]` (Gemm transB, or a Transpose in between). */
  transposed: boolean;
  in: number;
  out: number;
}

/** The graph indexed for the readers: its projections in node order, and the config checked against. */
export interface Index extends GraphIndex {
  linears: Linear[];
  linearNodes: Set<OnnxNode>;
  config: ModelConfig;
}

/** Throws the readers' InvalidModelError: "Cannot map the ONNX graph to {family} weights: {message}". */
export function fail(config: ModelConfig, message: string): never {
  throw new InvalidModelError(`Cannot map the ONNX graph to ${config.family} weights: ${message}`);
}

/** The tensor as a fresh float32 array (4-byte aligned, its own buffer) in its stored layout. */
export function floats(ix: Index, t: OnnxInitializer, what: string): Float32Array {
  const n = elementCount(t.dims);
  let out: Float32Array;
  if (t.dataType === DataType.FLOAT) {
    if (t.raw.length !== 4 * n) {
      fail(
        ix.config,
        `${what} "${t.name}" ${formatDims(t.dims)} holds ${t.raw.length} bytes, expected ${4 * n}`,
      );
    }
    // a view of the file's bytes when they are 4-aligned (no copy of a 538 MB model); else a copy
    out = t.raw.byteOffset % 4 === 0
      ? new Float32Array(t.raw.buffer, t.raw.byteOffset, n)
      : new Float32Array(ownBuffer(t.raw));
  } else if (t.dataType === DataType.FLOAT16) {
    if (t.raw.length !== 2 * n) {
      fail(
        ix.config,
        `${what} "${t.name}" ${formatDims(t.dims)} holds ${t.raw.length} bytes, expected ${2 * n}`,
      );
    }
    const bits = new Uint16Array(ownBuffer(t.raw));
    out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = halfToFloat(bits[i]);
  } else {
    fail(
      ix.config,
      `${what} "${t.name}" has data type ${t.dataType}; only fp32/fp16 MatMul graphs are supported (1 = float32, 10 = float16)`,
    );
  }
  return out;
}

function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = w[r * cols + c];
  return out;
}

/** Columns `[from, from + n)` of the row-major `[rows, cols]` matrix. */
export function columns(w: Float32Array, rows: number, cols: number, from: number, n: number): Float32Array {
  const out = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) out.set(w.subarray(r * cols + from, r * cols + from + n), r * n);
  return out;
}

/** The projection's weight as `[in, out]`. */
export function linearWeight(ix: Index, l: Linear, what: string): Float32Array {
  const w = floats(ix, l.init, what);
  return l.transposed ? transpose(w, l.out, l.in) : w;
}

/** A float32 value read as float32 and shown in its shortest decimal form when that is exact. */
export function tidy(x: number): number {
  for (let p = 1; p <= 9; p++) {
    const r = Number(x.toPrecision(p));
    if (Math.fround(r) === Math.fround(x)) return r;
  }
  return x;
}

/** Whether the square tensor is a signed permutation (exactly one ±1 per row): a RoPE rotation. */
export function signedPermutation(ix: Index, t: OnnxInitializer): Float32Array | undefined {
  if (t.dims.length !== 2 || t.dims[0] !== t.dims[1] || !isFloatTensor(t) || t.dims[0] > 1024) {
    return undefined;
  }
  const n = t.dims[0], m = floats(ix, t, "rotation");
  for (let r = 0; r < n; r++) {
    let nonzero = 0;
    for (let c = 0; c < n; c++) {
      const v = m[r * n + c];
      if (v === 0) continue;
      if (v !== 1 && v !== -1) return undefined;
      nonzero++;
    }
    if (nonzero !== 1) return undefined;
  }
  return m;
}

/** Indexes the graph and its projections; refuses quantized projections (only fp32/fp16 MatMul graphs). */
export function buildIndex(graph: OnnxGraph, config: ModelConfig): Index {
  const ix: Index = { ...indexGraph(graph), linears: [], linearNodes: new Set(), config };
  for (const node of graph.nodes) {
    if (QUANTIZED.has(node.opType)) {
      const weight = node.inputs.find((i) => graph.initializers.has(i)) ?? node.inputs[1] ?? "";
      fail(
        config,
        `node "${node.name}" is ${node.opType} (weight "${weight}"); only fp32/fp16 MatMul graphs are supported`,
      );
    }
    const l = asLinear(ix, node);
    if (l) {
      ix.linears.push(l);
      ix.linearNodes.add(node);
    }
  }
  return ix;
}

function asLinear(ix: Index, node: OnnxNode): Linear | undefined {
  if ((node.opType !== "MatMul" && node.opType !== "Gemm") || node.domain !== "" || node.inputs.length < 2) {
    return undefined;
  }
  let name = node.inputs[1], transposed = false;
  let init = tensorOf(ix, name);
  if (!init) {
    const t = ix.producer.get(name);
    if (t?.opType !== "Transpose") return undefined;
    const perm = t.attributes.perm;
    if (perm !== undefined && !(Array.isArray(perm) && perm.join() === "1,0")) return undefined;
    name = t.inputs[0];
    init = tensorOf(ix, name);
    transposed = true;
  }
  if (!init || init.dims.length !== 2) return undefined;
  if (node.opType === "Gemm") {
    const { transA = 0, transB = 0, alpha = 1, beta = 1 } = node.attributes as Record<string, number>;
    if (transA !== 0 || alpha !== 1 || (node.inputs[2] && beta !== 1)) {
      fail(
        ix.config,
        `Gemm "${node.name}" has transA ${transA}, alpha ${alpha}, beta ${beta}; only transA 0, alpha 1, beta 1 is supported`,
      );
    }
    if (transB) transposed = !transposed;
  }
  if (!isFloatTensor(init)) {
    fail(
      ix.config,
      `${node.opType} "${node.name}" multiplies by "${init.name}" of data type ${init.dataType}; only fp32/fp16 MatMul graphs are supported`,
    );
  }
  if (node.opType === "MatMul" && !transposed && signedPermutation(ix, init)) return undefined; // RoPE rotation
  const [a, b] = init.dims;
  return {
    node,
    input: node.inputs[0],
    output: node.outputs[0],
    init,
    transposed,
    in: transposed ? b : a,
    out: transposed ? a : b,
  };
}

/** Nodes and values reachable from `from`, not going past projections or a Softmax. */
export function downstream(ix: Index, from: string[]): { nodes: Set<OnnxNode>; values: Set<string> } {
  const values = new Set(from), nodes = new Set<OnnxNode>(), queue = [...from];
  while (queue.length > 0 && nodes.size < 20000) {
    const v = queue.pop()!;
    for (const c of ix.consumers.get(v) ?? []) {
      if (nodes.has(c)) continue;
      nodes.add(c);
      if (ix.linearNodes.has(c) || c.opType === "Softmax") continue;
      for (const o of c.outputs) {
        if (!values.has(o)) {
          values.add(o);
          queue.push(o);
        }
      }
    }
  }
  return { nodes, values };
}

/** The rank-1 float vector of `n` elements among the node's other inputs, if any. */
function vectorInput(ix: Index, node: OnnxNode, n: number, skip: string): string | undefined {
  return node.inputs.find((i) => {
    if (i === skip) return false;
    const t = tensorOf(ix, i);
    return t !== undefined && isFloatTensor(t) && elementCount(t.dims) === n &&
      t.dims.filter((d) => d !== 1).length <= 1;
  });
}

/** The bias of a projection: Gemm's C, or a vector Add on its output. Returns [name, output after]. */
export function biasOf(ix: Index, l: Linear): { name: string; output: string } | undefined {
  if (l.node.opType === "Gemm" && l.node.inputs[2]) return { name: l.node.inputs[2], output: l.output };
  const consumers = ix.consumers.get(l.output) ?? [];
  if (consumers.length !== 1 || consumers[0].opType !== "Add") return undefined;
  const name = vectorInput(ix, consumers[0], l.out, l.output);
  return name ? { name, output: consumers[0].outputs[0] } : undefined;
}

/** The tensor `name` as float32, checked to hold `n` values. */
export function vector(ix: Index, name: string, n: number, what: string): Float32Array {
  const t = tensorOf(ix, name)!;
  if (elementCount(t.dims) !== n) {
    fail(ix.config, `${what} "${name}" is ${formatDims(t.dims)}, expected [${n}]`);
  }
  return floats(ix, t, what);
}

/** The projection `l`, checked to exist and to be `[inDim, outDim]`. */
export function expectLinear(
  ix: Index,
  l: Linear | undefined,
  inDim: number,
  outDim: number,
  what: string,
): Linear {
  if (!l) {
    fail(ix.config, `the graph has too few projections (MatMul / Gemm by a weight): ${what} is missing`);
  }
  if (l.in !== inDim || l.out !== outDim) {
    fail(
      ix.config,
      `${what} weight "${l.init.name}" (${l.node.opType} "${l.node.name}") is [in ${l.in}, out ${l.out}], expected [${inDim}, ${outDim}] from the config`,
    );
  }
  return l;
}

/** The sizes a Split node cuts its input's last axis into (`total` wide), or undefined. */
export function splitSizes(ix: Index, split: OnnxNode, total: number): number[] | undefined {
  const n = split.outputs.length;
  let sizes: number[] | undefined;
  const given = split.inputs[1] ? tensorOf(ix, split.inputs[1]) : undefined;
  if (given && given.dataType === DataType.INT64) {
    sizes = Array.from(new BigInt64Array(ownBuffer(given.raw)), Number);
  } else if (Array.isArray(split.attributes.split)) sizes = split.attributes.split as number[];
  else if (split.inputs[1]) return undefined;
  else if (total % n === 0) sizes = Array(n).fill(total / n);
  return sizes && sizes.length === n && sizes.reduce((a, b) => a + b, 0) === total ? sizes : undefined;
}

/** The Split directly on the projection's output (after its bias, if any). */
export function splitAfter(ix: Index, output: string): OnnxNode | undefined {
  const consumers = ix.consumers.get(output) ?? [];
  return consumers.length === 1 && consumers[0].opType === "Split" ? consumers[0] : undefined;
}

// ---------------------------------------------------------------------------------------------
// Norms

/** The norm feeding a projection: its weight (and bias: a LayerNorm) tensors and epsilon. */
export interface Norm {
  weight: string;
  bias?: string;
  eps: number;
}

/** The LayerNorm or RMSNorm computing the projection's input. */
export function normBefore(ix: Index, l: Linear, what: string): Norm {
  const d = ix.config.hiddenSize;
  const node = sourceOf(ix, l.input);
  if (!node) fail(ix.config, `the input of ${what} is not computed by a norm (it is a graph input)`);
  const eps = (fallback: number) =>
    typeof node.attributes.epsilon === "number" ? node.attributes.epsilon : fallback;
  if (node.opType === "LayerNormalization") {
    if (!node.inputs[2]) fail(ix.config, `the LayerNormalization "${node.name}" before ${what} has no bias`);
    return { weight: node.inputs[1], bias: node.inputs[2], eps: eps(1e-5) };
  }
  if (
    ["SimplifiedLayerNormalization", "RMSNormalization", "SkipSimplifiedLayerNormalization"].includes(
      node.opType,
    )
  ) {
    return { weight: node.inputs[1], eps: eps(1e-5) };
  }
  if (node.opType === "Mul") {
    const weight = vectorInput(ix, node, d, "");
    if (weight) {
      const other = node.inputs.find((i) => i !== weight)!;
      const e = rmsEps(ix, other);
      if (e !== undefined) return { weight, eps: e };
    }
  }
  fail(
    ix.config,
    `the input of ${what} (weight "${l.init.name}") is computed by ${node.opType} "${node.name}", not by a LayerNormalization or an RMSNorm (x · rsqrt(mean(x²) + eps) · w with w [${d}])`,
  );
}

/** The epsilon of the RMSNorm computing `value`: the scalar added to a ReduceMean, nearest first. */
function rmsEps(ix: Index, value: string): number | undefined {
  let frontier = [value];
  const seen = new Set<string>();
  for (let depth = 0; depth < 6 && frontier.length > 0; depth++) {
    const next: string[] = [];
    for (const v of frontier) {
      const node = ix.producer.get(v);
      if (!node || seen.has(v)) continue;
      seen.add(v);
      if (node.opType === "Add") {
        const mean = node.inputs.find((i) => ix.producer.get(i)?.opType === "ReduceMean");
        const e = node.inputs.map((i) => tensorOf(ix, i)).find((t) =>
          t && isFloatTensor(t) && elementCount(t.dims) === 1
        );
        if (mean && e) return floats(ix, e, "RMSNorm epsilon")[0];
      }
      next.push(...node.inputs.filter((i) => i !== "" && !tensorOf(ix, i)));
    }
    frontier = next;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Embeddings and head

/** The rank-1 int tensor `m` of `Gather(m, input_ids)` feeding the embedding Gather `gather`, if any. */
function tokenMap(ix: Index, gather: OnnxNode): OnnxInitializer | undefined {
  const src = ix.producer.get(upThrough(ix, gather.inputs[1]));
  if (src?.opType !== "Gather" || upThrough(ix, src.inputs[1]) !== "input_ids") return undefined;
  const t = tensorOf(ix, src.inputs[0]);
  return t && (t.dataType === DataType.INT32 || t.dataType === DataType.INT64) && t.dims.length === 1
    ? t
    : undefined;
}

/** The token embedding: its Gather, tensor, and token map (a vocabulary subset) if any, checked against the config. */
export function tokenEmbedding(ix: Index): { gather: OnnxNode; init: OnnxInitializer; inMap?: Int32Array } {
  const gathers = ix.graph.nodes.filter((n) => {
    const t = n.opType === "Gather" ? tensorOf(ix, n.inputs[0]) : undefined;
    return t !== undefined && isFloatTensor(t) && t.dims.length === 2;
  });
  const fromIds = (n: OnnxNode) =>
    upThrough(ix, n.inputs[1]) === "input_ids" || tokenMap(ix, n) !== undefined;
  const gather = gathers.find(fromIds) ?? gathers[0];
  if (!gather) fail(ix.config, "no Gather from a rank-2 float tensor (the token embedding) was found");
  const init = tensorOf(ix, gather.inputs[0])!;
  const { vocabSize: v, hiddenSize: d } = ix.config;
  const map = tokenMap(ix, gather);
  if (!map) {
    if (init.dims[0] !== v || init.dims[1] !== d) {
      fail(
        ix.config,
        `the token embedding "${init.name}" is ${formatDims(init.dims)}, expected [${v}, ${d}]`,
      );
    }
    return { gather, init };
  }
  // a vocabulary subset: token id → embedding row
  const rows = intValues(map);
  if (!rows || rows.length !== v) {
    fail(
      ix.config,
      `the token map "${map.name}" feeding the embedding Gather is ${
        formatDims(map.dims)
      } of data type ${map.dataType}${
        rows ? "" : " (bytes not matching its dims)"
      }, expected [${v}] (vocab_size) int32/int64`,
    );
  }
  let min = Infinity, max = -Infinity;
  for (const r of rows) {
    if (r < min) min = r;
    if (r > max) max = r;
  }
  if (min < 0) fail(ix.config, `the token map "${map.name}" holds the row ${min}, expected rows ≥ 0`);
  if (init.dims.length !== 2 || init.dims[0] !== max + 1 || init.dims[1] !== d) {
    fail(
      ix.config,
      `the token embedding "${init.name}" is ${formatDims(init.dims)}, expected [${
        max + 1
      }, ${d}] (rows: 1 + the largest row of the token map "${map.name}")`,
    );
  }
  return { gather, init, inMap: Int32Array.from(rows) };
}

/** The LM head: the last projection, `[hidden, vocab]`, tied when its weight is the embedding tensor. */
export function headOf(
  ix: Index,
  embed: OnnxInitializer,
  embedWeight: Float32Array,
): { head: HeadWeight; linear: Linear } {
  const { vocabSize: v, hiddenSize: d } = ix.config;
  const last = ix.linears[ix.linears.length - 1];
  const linear = expectLinear(ix, last, d, v, "the LM head (the last projection)");
  const tied = linear.init.name === embed.name;
  const weight = tied ? embedWeight : floats(ix, linear.init, "LM head");
  return { head: { weight, layout: linear.transposed ? "vocab-major" : "in-out", tied }, linear };
}

/** Whether `axis` is the last axis of the head's output (Gemm: rank 2). */
function lastAxis(l: Linear, axis: number | undefined): boolean {
  return axis === -1 || (l.node.opType === "Gemm" && axis === 1);
}

/**
 * The LM head of a vocabulary-subset graph: the tied head over all `rows` embedding rows, a Slice
 * to the first H, ScatterElements of them at H token ids into a ConstantOfShape `[…, vocab]` row,
 * reaching a graph output through reshapes.
 */
export function subsetHead(
  ix: Index,
  embed: OnnxInitializer,
  embedWeight: Float32Array,
  rows: number,
): { head: HeadWeight; linear: Linear; headIds: Int32Array; fill: number } {
  const { config } = ix;
  const { vocabSize: v, hiddenSize: d } = config;
  const what = "the vocabulary-subset head";
  const linear = expectLinear(
    ix,
    ix.linears[ix.linears.length - 1],
    d,
    rows,
    `${what} (the last projection)`,
  );
  if (linear.init.name !== embed.name || !linear.transposed) {
    fail(
      config,
      `${what} multiplies by "${linear.init.name}"${
        linear.transposed ? "" : " untransposed"
      }, expected the token embedding "${embed.name}" itself (tied, x · Eᵀ)`,
    );
  }
  const bias = biasOf(ix, linear);
  if (bias && floats(ix, tensorOf(ix, bias.name)!, "LM head bias").some((x) => x !== 0)) {
    fail(config, `${what} has a nonzero bias ("${bias.name}"), which this Llama reader does not support`);
  }
  const scores = bias ? bias.output : linear.output;
  // Slice [0, H) of the last axis
  const slice = onlyUse(ix, scores);
  if (slice?.opType !== "Slice") {
    fail(config, `${what}'s logits go to ${slice?.opType ?? "several nodes"}, expected one Slice`);
  }
  const [starts, ends, axes, steps] = [1, 2, 3, 4].map((i) =>
    slice.inputs[i] ? intValues(tensorOf(ix, slice.inputs[i])) : undefined
  );
  const headRows = ends && ends.length === 1 ? Math.min(ends[0], rows) : 0;
  if (
    starts?.join() !== "0" || !(headRows > 0) || axes?.length !== 1 || !lastAxis(linear, axes[0]) ||
    (steps !== undefined && steps.join() !== "1")
  ) {
    fail(
      config,
      `the Slice "${slice.name}" after ${what} has starts [${starts ?? "?"}], ends [${ends ?? "?"}], axes [${
        axes ?? "?"
      }], steps [${steps ?? "1"}], expected [0], [H ≤ ${rows}], the last axis, [1] (constants)`,
    );
  }
  // ScatterElements(ConstantOfShape, token ids, the H logits) along the last axis
  const scatter = onlyUse(ix, slice.outputs[0]);
  const axis = scatter?.attributes.axis as number | undefined ?? 0;
  if (
    scatter?.opType !== "ScatterElements" || scatter.inputs[2] !== slice.outputs[0] ||
    !lastAxis(linear, axis) || (scatter.attributes.reduction ?? "none") !== "none"
  ) {
    fail(
      config,
      `the head's ${headRows} logits go to ${scatter?.opType ?? "several nodes"}${
        scatter?.opType === "ScatterElements"
          ? ` (axis ${axis}, reduction ${scatter.attributes.reduction})`
          : ""
      }, expected a ScatterElements of them along the last axis, reduction none`,
    );
  }
  const filled = ix.producer.get(upThrough(ix, scatter.inputs[0]));
  if (filled?.opType !== "ConstantOfShape") {
    fail(
      config,
      `the ScatterElements "${scatter.name}" writes into ${
        filled?.opType ?? "a graph input"
      }, expected a ConstantOfShape`,
    );
  }
  const shapeSrc = ix.producer.get(filled.inputs[0]);
  const shapeTail = intValues(tensorOf(ix, filled.inputs[0])) ??
    (shapeSrc?.opType === "Concat"
      ? intValues(tensorOf(ix, shapeSrc.inputs[shapeSrc.inputs.length - 1]))
      : undefined);
  if (shapeTail !== undefined && shapeTail[shapeTail.length - 1] !== v) {
    fail(
      config,
      `the ConstantOfShape "${filled.name}" logits row is ${
        shapeTail[shapeTail.length - 1]
      } wide, expected ${v} (vocab_size)`,
    );
  }
  const value = filled.tensorAttributes?.value;
  if (value && (!isFloatTensor(value) || elementCount(value.dims) !== 1)) {
    fail(
      config,
      `the ConstantOfShape "${filled.name}" value is ${
        formatDims(value.dims)
      } of data type ${value.dataType}, expected one float`,
    );
  }
  const fill = value ? floats(ix, value, "ConstantOfShape value")[0] : 0; // the operator's default: 0
  const idsInit = tensorOf(ix, upThrough(ix, scatter.inputs[1], new Set([...PASS_THROUGH, "Expand"])));
  const ids = intValues(idsInit);
  if (!ids || ids.length !== headRows) {
    fail(
      config,
      `the ScatterElements "${scatter.name}" indices ${
        idsInit
          ? `"${idsInit.name}" ${formatDims(idsInit.dims)} of data type ${idsInit.dataType}`
          : "are not a constant"
      }, expected ${headRows} int32/int64 token ids (one per head row)`,
    );
  }
  const seen = new Set<number>();
  ids.forEach((id, i) => {
    if (!(Number.isInteger(id) && id >= 0 && id < v) || seen.has(id)) {
      fail(
        config,
        `head row ${i} goes to token id ${id}, ${
          seen.has(id) ? "already taken by another row" : `outside [0, ${v})`
        }`,
      );
    }
    seen.add(id);
  });
  let out = scatter.outputs[0];
  for (let use = onlyUse(ix, out); use && PASS_THROUGH.has(use.opType); use = onlyUse(ix, out)) {
    out = use.outputs[0];
  }
  if (!ix.graph.outputs.includes(out)) {
    fail(
      config,
      `the ScatterElements "${scatter.name}" output does not reach a graph output (through reshapes)`,
    );
  }
  return {
    head: { weight: embedWeight, layout: "vocab-major", tied: true },
    linear,
    headIds: Int32Array.from(ids),
    fill,
  };
}

const HIDDEN_STATE = /^hidden_states\.(\d+)$/;

/**
 * The layers whose residual stream (after the layer; for the last one, before the final norm)
 * the graph outputs as `hidden_states.{i}`, ascending; each output is checked by data flow to be
 * that residual: looking up through Identity / Reshape / Cast, an Add whose nearest projection
 * upstream (breadth-first) is layer i's MLP down projection `downNodes[i]` (so not layer i − 1's or
 * i + 1's residual), and which some node other than an Add reads (a norm; a bias or block-minimum
 * Add right after the projection only feeds the residual Add).
 *
 * @param graph The graph.
 * @param downNodes Each layer's MLP down projection node (MatMul, Gemm or MatMulNBits), in order.
 * @param config The model config (for messages and the layer count).
 * @returns The exposed layers (empty when the graph has no `hidden_states.*` output).
 * @throws {InvalidModelError} a `hidden_states.{i}` output names a layer outside the model or is
 *   not layer i's residual stream.
 */
export function exposedHiddenStates(
  graph: OnnxGraph,
  downNodes: readonly OnnxNode[],
  config: ModelConfig,
): number[] {
  const named = graph.outputs.map((o) => [o, HIDDEN_STATE.exec(o)] as const).filter(([, m]) => m !== null);
  if (named.length === 0) return [];
  const { producer, consumers } = indexGraph(graph);
  const layerOf = new Map(downNodes.map((n, i) => [n, i]));
  const out: number[] = [];
  for (const [name, m] of named) {
    const layer = Number(m![1]);
    if (layer >= config.numLayers || layer >= downNodes.length) {
      fail(config, `the output ${name} names layer ${layer}, but the model has ${config.numLayers} layers`);
    }
    let v = name;
    for (let k = 0; k < 8; k++) {
      const p = producer.get(v);
      if (!p || !PASS_THROUGH.has(p.opType)) break;
      v = p.inputs[0];
    }
    const add = producer.get(v);
    // breadth-first up from the Add: the first down projection met is the layer the value follows
    let nearest: number | undefined;
    let frontier = add ? [add] : [];
    const seen = new Set<OnnxNode>();
    for (let depth = 0; depth < 12 && frontier.length > 0 && nearest === undefined; depth++) {
      const next: OnnxNode[] = [];
      for (const n of frontier) {
        if (seen.has(n)) continue;
        seen.add(n);
        const l = layerOf.get(n);
        if (l !== undefined) nearest = nearest === undefined ? l : Math.max(nearest, l);
        for (const i of n.inputs) {
          const p = producer.get(i);
          if (p) next.push(p);
        }
      }
      frontier = next;
    }
    const readByNorm = (value: string): boolean =>
      (consumers.get(value) ?? []).some((c) =>
        PASS_THROUGH.has(c.opType) ? readByNorm(c.outputs[0]) : c.opType !== "Add" && c.opType !== "Shape"
      );
    if (add?.opType !== "Add" || nearest !== layer || !readByNorm(v)) {
      fail(
        config,
        `the output ${name} is not the residual stream after layer ${layer} (it is ${
          add ? `${add.opType} "${add.name}"` : "not computed by a node"
        }, ${
          nearest === undefined
            ? "after no MLP down projection"
            : `after layer ${nearest}'s MLP down projection`
        }${readByNorm(v) ? "" : ", read by no norm"})`,
      );
    }
    out.push(layer);
  }
  return out.sort((a, b) => a - b);
}
