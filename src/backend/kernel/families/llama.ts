/**
 * The Llama family on the kernel backend (config `model_type` llama, mistral, qwen2, … : see
 * src/model/config.ts): its graph readers ({@linkcode llamaGraphWeights}: fp32 / fp16 MatMul
 * graphs by data flow, over the shared queries of ../transformer_weights.ts; the converter's 8-bit
 * graphs through ../q8_graph_weights.ts) and its forward recipe ({@linkcode llama}: RMSNorm
 * blocks, q / k / v with optional biases and RoPE, grouped-query attention, a SwiGLU MLP, a head
 * tied or not, a draft's vocabulary subset).
 *
 * @module
 */
import type { ModelConfig } from "../../../model/config.ts";
import { DataType } from "../../../onnx/data_types.ts";
import type { OnnxGraph, OnnxNode } from "../../../onnx/graph.ts";
import { elementCount, isFloatTensor, ownBuffer, tensorOf } from "../../../onnx/queries.ts";
import { type ForwardPass, type HeadAt, type LinearAt, type LinearMemory, outputsOf } from "../ops.ts";
import { converterQ8Weights, isConverterQ8Graph } from "../q8_graph_weights.ts";
import type { LinearWeight } from "../q8_weight.ts";
import {
  biasOf,
  buildIndex,
  columns,
  downstream,
  expectLinear,
  exposedHiddenStates,
  fail,
  floats,
  headOf,
  type HeadWeight,
  type Index,
  type Linear,
  linearWeight,
  normBefore,
  signedPermutation,
  splitAfter,
  splitSizes,
  subsetHead,
  tidy,
  tokenEmbedding,
  type TransformerWeightsOptions,
  vector,
  type VocabSubset,
} from "../transformer_weights.ts";
import type { KernelFamily, KernelModel } from "./mod.ts";

/**
 * One Llama block (hidden d, q width H·hd, k/v width Hkv·hd, MLP width n); `L` is the linear
 * weights' form: float32 `[in, out]` from {@linkcode llamaGraphWeights}, 8-bit blocks from an
 * 8-bit converter graph.
 */
export interface LlamaLayerWeights<L extends LinearWeight = Float32Array> {
  /** RMSNorm before attention `[d]`. */
  inputNorm: Float32Array;
  /** Query projection `[d, H·hd]` (head-major columns, RoPE pairs as {@linkcode LlamaWeights.rope}). */
  q: L;
  /** Key projection `[d, Hkv·hd]`. */
  k: L;
  /** Value projection `[d, Hkv·hd]`. */
  v: L;
  /** Query bias `[H·hd]` (Qwen2-style graphs). */
  qBias?: Float32Array;
  /** Key bias `[Hkv·hd]`. */
  kBias?: Float32Array;
  /** Value bias `[Hkv·hd]`. */
  vBias?: Float32Array;
  /** Attention output projection `[H·hd, d]`. */
  o: L;
  /** RMSNorm before the MLP `[d]`. */
  postNorm: Float32Array;
  /** SwiGLU gate `[d, n]` (the one through SiLU). */
  gate: L;
  /** SwiGLU up `[d, n]`. */
  up: L;
  /** MLP down projection `[n, d]`. */
  down: L;
}

/** The weights of a Llama-family graph; `L` as in {@linkcode LlamaLayerWeights}. */
export interface LlamaWeights<L extends LinearWeight = Float32Array> {
  /** Family tag. */
  family: "llama";
  /**
   * Token embedding `[vocab, d]`; with {@linkcode LlamaWeights.vocabSubset}: `[rows, d]`. 8-bit:
   * one output per token (`n` = vocabulary, `k` = d).
   */
  embed: L;
  /** Blocks in order. */
  layers: LlamaLayerWeights<L>[];
  /** Final RMSNorm `[d]`. */
  norm: Float32Array;
  /**
   * LM head (tied: `embed` itself, "vocab-major"). With {@linkcode LlamaWeights.vocabSubset}
   * always tied to the `[rows, d]` embedding; only its first `headIds.length` rows are logits.
   */
  head: HeadWeight<L>;
  /**
   * A vocabulary subset: token id → embedding row, and the head's rows → token ids (others get
   * `fill`). Logits: `logit[headIds[i]] = x · embed[i]` for i < headIds.length, `fill` elsewhere.
   */
  vocabSubset?: VocabSubset;
  /** RMSNorm epsilon (the graph's, float32-exact or its shortest decimal form). */
  eps: number;
  /** RoPE base θ, derived from {@linkcode LlamaWeights.ropeInvFreq} (θ = invFreq[1]^(−hd/2)). */
  ropeTheta: number;
  /** The graph's RoPE inverse frequencies `[hd / 2]` (pair j rotates by position · invFreq[j]). */
  ropeInvFreq: Float32Array;
  /** "half": HF `rotate_half`, pairs (i, i + hd/2); "interleaved": pairs (2i, 2i + 1). */
  rope: "half" | "interleaved";
  /** Layers whose residual stream the graph outputs as `hidden_states.{i}`, ascending (see `exposedHiddenStates`). */
  hiddenStates?: number[];
}

// ---------------------------------------------------------------------------------------------
// The reader

const SILU = new Set(["Sigmoid", "Silu", "Swish"]);

/** A projection output (or a part of a fused one): the value and the columns it holds. */
interface Part {
  linear: Linear;
  /** Where the part's values are (a Split output, or the projection's output). */
  value: string;
  from: number;
  width: number;
  bias?: string;
}

/** The parts of one fused or unfused group of projections on the same input. */
function group(ix: Index, body: Linear[], at: number, widths: number[], what: string): [Part[], number] {
  const d = ix.config.hiddenSize, total = widths.reduce((a, b) => a + b, 0);
  const first = body[at];
  if (first && first.in === d && first.out === total && widths.length > 1) {
    const b = biasOf(ix, first);
    const split = splitAfter(ix, b ? b.output : first.output);
    const sizes = split && splitSizes(ix, split, total);
    if (split && sizes && sizes.join() === widths.join()) {
      let from = 0;
      const parts = sizes.map((width, j) => {
        const part = { linear: first, value: split.outputs[j], from, width, bias: b?.name };
        from += width;
        return part;
      });
      return [parts, at + 1];
    }
    if (split) {
      fail(
        ix.config,
        `${what}: the fused projection "${first.init.name}" is split into [${
          sizes ?? "?"
        }], expected [${widths}]`,
      );
    }
  }
  const parts = widths.map((width, j) => {
    const l = expectLinear(ix, body[at + j], d, width, `${what} projection ${j + 1} of ${widths.length}`);
    const b = biasOf(ix, l);
    return { linear: l, value: b ? b.output : l.output, from: 0, width, bias: b?.name };
  });
  if (parts.some((p) => p.linear.input !== parts[0].linear.input)) {
    fail(ix.config, `${what}: the ${widths.length} projections do not read the same input`);
  }
  return [parts, at + widths.length];
}

function partWeight(ix: Index, p: Part, what: string): Float32Array {
  const w = linearWeight(ix, p.linear, what);
  return p.width === p.linear.out ? w : columns(w, p.linear.in, p.linear.out, p.from, p.width);
}

function partBias(ix: Index, p: Part, what: string): Float32Array | undefined {
  if (!p.bias) return undefined;
  return vector(ix, p.bias, p.linear.out, what).slice(p.from, p.from + p.width);
}

/** Orders the three attention parts as q, k, v by where they go (present.N.key / .value / neither). */
function qkvRoles(ix: Index, parts: Part[], layer: number): [Part, Part, Part] {
  const key = `present.${layer}.key`, value = `present.${layer}.value`;
  if (!ix.graph.outputs.includes(key) || !ix.graph.outputs.includes(value)) {
    return parts as [Part, Part, Part]; // no KV-cache outputs to tell them apart: the export's order
  }
  const reach = parts.map((p) => downstream(ix, [p.value]).values);
  const find = (test: (r: Set<string>) => boolean, role: string) => {
    const found = parts.filter((_, j) => test(reach[j]));
    if (found.length !== 1) {
      fail(ix.config, `layer ${layer}: ${found.length} of the attention projections look like the ${role}`);
    }
    return found[0];
  };
  return [
    find((r) => !r.has(key) && !r.has(value), "query (reaching neither present key nor value)"),
    find((r) => r.has(key) && !r.has(value), `key (reaching ${key})`),
    find((r) => r.has(value) && !r.has(key), `value (reaching ${value})`),
  ];
}

/** Orders the two MLP input parts as gate (its output goes through SiLU's Sigmoid), up. */
function gateUpRoles(ix: Index, parts: Part[], layer: number): [Part, Part] {
  const silu = parts.map((p) => [...downstream(ix, [p.value]).nodes].some((n) => SILU.has(n.opType)));
  if (silu.filter(Boolean).length !== 1) {
    fail(
      ix.config,
      `layer ${layer}: expected exactly one of the two MLP input projections to go through a Sigmoid (SiLU), got ${
        silu.filter(Boolean).length
      }`,
    );
  }
  return silu[0] ? [parts[0], parts[1]] : [parts[1], parts[0]];
}

type RopeEvidence = { style: "half" | "interleaved"; how: string };

/** The RoPE style the graph applies to `value` (a q or k projection output). */
function ropeStyle(ix: Index, value: string, hd: number): RopeEvidence | undefined {
  const { nodes } = downstream(ix, [value]);
  for (const n of nodes) {
    if (n.opType === "RotaryEmbedding") {
      return { style: n.attributes.interleaved ? "interleaved" : "half", how: "RotaryEmbedding.interleaved" };
    }
    if (n.opType === "MatMul" && !ix.linearNodes.has(n)) {
      const t = tensorOf(ix, n.inputs[1]);
      const m = t && t.dims[0] === hd ? signedPermutation(ix, t) : undefined;
      if (!m) continue;
      // x · R = rotate(x): "half" has R[j + hd/2][j] = −1, R[j][j + hd/2] = 1; "interleaved"
      // has R[2i + 1][2i] = −1, R[2i][2i + 1] = 1.
      const at = (r: number, c: number) => m[r * hd + c];
      let half = true, inter = true;
      for (let j = 0; j < hd / 2; j++) {
        half &&= at(j + hd / 2, j) === -1 && at(j, j + hd / 2) === 1;
        inter &&= at(2 * j + 1, 2 * j) === -1 && at(2 * j, 2 * j + 1) === 1;
      }
      if (half) return { style: "half", how: `rotation MatMul by "${t!.name}" pairing (j, j + hd/2)` };
      if (inter) return { style: "interleaved", how: `rotation MatMul by "${t!.name}" pairing (2i, 2i + 1)` };
    }
    if (n.opType === "Neg") {
      const src = ix.producer.get(n.inputs[0]);
      if (src?.opType === "Split" && src.outputs.length === 2 && src.outputs[1] === n.inputs[0]) {
        const x = src.inputs[0];
        const sizes = src.inputs[1] ? splitSizes(ix, src, hd) : [hd / 2, hd / 2];
        const withCos = (ix.consumers.get(x) ?? []).some((c) => c.opType === "Mul");
        if (sizes && sizes[0] === sizes[1] && withCos && [-1, 3].includes(src.attributes.axis as number)) {
          return { style: "half", how: "Split of the head in halves, Neg of the second half (rotate_half)" };
        }
      }
      if (src?.opType === "Slice") {
        const int = (i: number) => {
          const t = src.inputs[i] ? tensorOf(ix, src.inputs[i]) : undefined;
          return t && t.dataType === DataType.INT64
            ? Number(new BigInt64Array(ownBuffer(t.raw))[0])
            : undefined;
        };
        const start = int(1), step = int(4) ?? 1;
        if (step === 2) return { style: "interleaved", how: "Slice with step 2 before Neg" };
        if (step === 1 && start === hd / 2) {
          return { style: "half", how: "Slice [hd/2:] before Neg (rotate_half)" };
        }
      }
    }
  }
  return undefined;
}

/** The RoPE inverse frequencies: the `hd / 2` float constant upstream of the Cos table. */
function ropeFrequencies(ix: Index, hd: number): Float32Array {
  const cos = ix.graph.nodes.find((n) => n.opType === "Cos");
  if (!cos) fail(ix.config, "no Cos node (RoPE table) was found");
  let frontier = [cos.inputs[0]];
  const seen = new Set<string>();
  for (let depth = 0; depth < 8 && frontier.length > 0; depth++) {
    const next: string[] = [];
    for (const v of frontier) {
      if (seen.has(v)) continue;
      seen.add(v);
      const t = tensorOf(ix, v);
      if (t && isFloatTensor(t) && elementCount(t.dims) === hd / 2) {
        return floats(ix, t, "RoPE inverse frequencies");
      }
      const p = ix.producer.get(v);
      if (p) next.push(...p.inputs.filter((i) => i !== ""));
    }
    frontier = next;
  }
  fail(
    ix.config,
    `no ${hd / 2}-element float constant (RoPE inverse frequencies) feeds the Cos node "${cos.name}"`,
  );
}

function ropeThetaOf(ix: Index, inv: Float32Array, hd: number): number {
  if (Math.abs(inv[0] - 1) > 1e-6 || inv.length < 2) {
    fail(ix.config, `the RoPE inverse frequencies start with ${inv[0]}, expected 1 (θ^0)`);
  }
  const theta = inv[1] ** (-hd / 2);
  // the shortest decimal θ whose table matches the graph's to float32 rounding (10000, not 10000.006)
  for (let p = 1; p <= 9; p++) {
    const r = Number(theta.toPrecision(p));
    if (inv.every((f, j) => Math.abs(r ** ((-2 * j) / hd) - f) <= 1e-6 * f)) return r;
  }
  return theta;
}

function llamaFromIndex(ix: Index, options: TransformerWeightsOptions): LlamaWeights {
  const { config } = ix;
  const d = config.hiddenSize, L = config.numLayers, hd = config.headDim;
  const Q = config.numHeads * hd, KV = config.numKvHeads * hd;
  const { init: embedInit, inMap } = tokenEmbedding(ix);
  const embed = floats(ix, embedInit, "token embedding");
  const subset = inMap && subsetHead(ix, embedInit, embed, embedInit.dims[0]);
  const { head, linear: headLinear } = subset ?? headOf(ix, embedInit, embed);
  if (!subset && biasOf(ix, headLinear)) {
    fail(config, "the LM head has a bias, which this Llama reader does not support");
  }
  const body = ix.linears.slice(0, -1);
  let at = 0, eps: number | undefined;
  let inner = options.intermediateSize;
  const evidence: RopeEvidence[] = [];
  const norm = (l: Linear, what: string): Float32Array => {
    const n = normBefore(ix, l, what);
    if (n.bias !== undefined) fail(config, `the norm before ${what} has a bias: a LayerNorm, not an RMSNorm`);
    if (eps === undefined) eps = n.eps;
    else if (Math.fround(eps) !== Math.fround(n.eps)) {
      fail(config, `the norm before ${what} has epsilon ${n.eps}, the others ${eps}`);
    }
    return vector(ix, n.weight, d, `${what} norm weight`);
  };
  const noBias = (l: Linear, what: string) => {
    const b = biasOf(ix, l);
    if (b) fail(config, `${what} has a bias ("${b.name}"), which this Llama reader does not support`);
  };
  const layers: LlamaLayerWeights[] = [];
  const downNodes: OnnxNode[] = [];
  for (let i = 0; i < L; i++) {
    const p = `layer ${i}`;
    const [attnParts, afterAttn] = group(ix, body, at, [Q, KV, KV], `${p} attention q|k|v`);
    const [q, k, v] = qkvRoles(ix, attnParts, i);
    const o = expectLinear(ix, body[afterAttn], Q, d, `${p} attention output projection`);
    noBias(o, `${p} attention output projection`);
    // MLP width: the config's, else the fused gate|up's half or the gate's width
    const next = body[afterAttn + 1];
    if (inner === undefined) {
      const fused = next && splitAfter(ix, next.output)?.outputs.length === 2;
      inner = next ? (fused ? next.out / 2 : next.out) : 0;
    }
    const [mlpParts, afterMlp] = group(ix, body, afterAttn + 1, [inner, inner], `${p} MLP gate|up`);
    const [gate, up] = gateUpRoles(ix, mlpParts, i);
    for (const part of mlpParts) {
      if (part.bias) fail(config, `${p} MLP has a bias ("${part.bias}"), not supported`);
    }
    const down = expectLinear(ix, body[afterMlp], inner, d, `${p} MLP down projection`);
    noBias(down, `${p} MLP down projection`);
    downNodes.push(down.node);
    at = afterMlp + 1;
    if (i === 0) {
      for (const [part, name] of [[q, "query"], [k, "key"]] as const) {
        const e = ropeStyle(ix, part.value, hd);
        if (!e) fail(config, `layer 0: cannot tell the RoPE style applied to the ${name} from the graph`);
        evidence.push(e);
      }
      if (evidence[0].style !== evidence[1].style) {
        fail(config, `layer 0: the query uses ${evidence[0].style} RoPE, the key ${evidence[1].style}`);
      }
    }
    layers.push({
      inputNorm: norm(q.linear, `${p} attention`),
      q: partWeight(ix, q, `${p} q weight`),
      k: partWeight(ix, k, `${p} k weight`),
      v: partWeight(ix, v, `${p} v weight`),
      ...(q.bias ? { qBias: partBias(ix, q, `${p} q bias`) } : {}),
      ...(k.bias ? { kBias: partBias(ix, k, `${p} k bias`) } : {}),
      ...(v.bias ? { vBias: partBias(ix, v, `${p} v bias`) } : {}),
      o: linearWeight(ix, o, `${p} o weight`),
      postNorm: norm(gate.linear, `${p} MLP`),
      gate: partWeight(ix, gate, `${p} gate weight`),
      up: partWeight(ix, up, `${p} up weight`),
      down: linearWeight(ix, down, `${p} down weight`),
    });
  }
  if (at !== body.length) {
    fail(
      config,
      `${body.length - at} projections are left over after ${L} layers (num_hidden_layers is ${L})`,
    );
  }
  const finalNorm = norm(headLinear, "the LM head");
  const ropeInvFreq = ropeFrequencies(ix, hd);
  return {
    family: "llama",
    embed,
    layers,
    norm: finalNorm,
    head,
    ...(subset ? { vocabSubset: { inMap: inMap!, headIds: subset.headIds, fill: subset.fill } } : {}),
    eps: tidy(eps!),
    ropeTheta: ropeThetaOf(ix, ropeInvFreq, hd),
    ropeInvFreq,
    rope: evidence[0].style,
    hiddenStates: exposedHiddenStates(ix.graph, downNodes, config),
  };
}

/**
 * Finds every weight of a Llama-family decoder graph by data flow (see ../transformer_weights.ts),
 * checks its shape against `config`, and returns float32 copies (fp16 converted), linear layers
 * `[in, out]` (transposed when the graph stores `[out, in]`).
 *
 * @param graph The graph ({@linkcode readOnnxGraph}).
 * @param config The model's config.
 * @param options Extra sizes to check (the MLP width).
 * @returns The weights; a tied head shares the embedding's array.
 * @throws {InvalidModelError} a quantized graph (MatMulNBits, DequantizeLinear, integer weights:
 *   "only fp32/fp16 MatMul graphs are supported"), a weight whose shape disagrees with the config,
 *   a missing or extra projection, or a structure this reader does not recognise (no norm before a
 *   projection, no SiLU, no RoPE frequencies, ...), named with the values got.
 * @example
 * ```ts ignore
 * import { readOnnxGraph } from "../../../onnx/mod.ts";
 * import { parseModelConfig } from "../../../model/config.ts";
 * import { llamaGraphWeights } from "./llama.ts";
 * const graph = readOnnxGraph(await Deno.readFile("models/draft/onnx/model.onnx"));
 * const config = parseModelConfig(JSON.parse(await Deno.readTextFile("models/draft/config.json")));
 * const w = llamaGraphWeights(graph, config);
 * console.log(w.rope, w.layers[0].q.length);
 * ```
 */
export function llamaGraphWeights(
  graph: OnnxGraph,
  config: ModelConfig,
  options: TransformerWeightsOptions = {},
): LlamaWeights {
  return llamaFromIndex(buildIndex(graph, config), options);
}

// ---------------------------------------------------------------------------------------------
// Placement and the forward recipe

/** One Llama block's weights in the kernel's memory (byte offsets; biases 0 = absent). */
interface LlamaLayerAt {
  inputNorm: number;
  postNorm: number;
  q: LinearAt;
  qBias: number;
  k: LinearAt;
  kBias: number;
  v: LinearAt;
  vBias: number;
  o: LinearAt;
  gate: LinearAt;
  up: LinearAt;
  down: LinearAt;
}

/** A Llama model in the kernel's memory. */
export interface LlamaModel extends KernelModel {
  /** Token embedding (`[rows, d]` with a vocabulary subset). */
  embed: LinearAt;
  /** The blocks. */
  layers: LlamaLayerAt[];
  /** Final RMSNorm. */
  norm: number;
  /** The head. */
  head: HeadAt;
  /** A draft's vocabulary subset, if any. */
  subset?: VocabSubset;
  /** RMSNorm epsilon. */
  eps: number;
  /** RoPE pairing and inverse frequencies `[hd / 2]`. */
  rope: "half" | "interleaved";
  ropeInvFreq: Float32Array;
  /** MLP width. */
  inner: number;
}

/**
 * Llama on the kernel backend: reads fp32 / fp16 graphs ({@linkcode llamaGraphWeights}) and the
 * converter's 8-bit ones (`converterQ8Weights`, kept 8-bit), and runs embeddings → blocks
 * (RMSNorm, q / k / v (+ biases), RoPE on q and k, grouped-query attention, output projection;
 * RMSNorm, SwiGLU gate · up, down; each added to the residual stream) → final RMSNorm → head
 * (scattered to the token ids of a vocabulary subset).
 */
export const llama: KernelFamily<LlamaWeights<LinearWeight>, LlamaModel> = Object.freeze({
  name: "llama",
  read(graph: OnnxGraph, config: ModelConfig): LlamaWeights<LinearWeight> {
    return isConverterQ8Graph(graph) ? converterQ8Weights(graph, config) : llamaGraphWeights(graph, config);
  },
  place(mem: LinearMemory, w: LlamaWeights<LinearWeight>, config: ModelConfig): LlamaModel {
    const embed = mem.linear(w.embed);
    const layers = w.layers.map((l) => ({
      inputNorm: mem.vector(l.inputNorm),
      postNorm: mem.vector(l.postNorm),
      q: mem.linear(l.q),
      qBias: mem.vector(l.qBias),
      k: mem.linear(l.k),
      kBias: mem.vector(l.kBias),
      v: mem.linear(l.v),
      vBias: mem.vector(l.vBias),
      o: mem.linear(l.o),
      gate: mem.linear(l.gate),
      up: mem.linear(l.up),
      down: mem.linear(l.down),
    }));
    return {
      embed,
      layers,
      norm: mem.vector(w.norm),
      head: mem.head(w.head, w.embed, embed),
      subset: w.vocabSubset,
      eps: w.eps, // read from the graph by both readers
      rope: w.rope,
      ropeInvFreq: w.ropeInvFreq, // both readers check its length
      inner: outputsOf(w.layers[0].gate, config.hiddenSize),
      hiddenStates: w.hiddenStates ?? [],
    };
  },
  forward(p: ForwardPass, w: LlamaModel): void {
    const { m, d, heads, kvHeads, hd } = p, inner = w.inner;
    const qWidth = heads * hd, kvWidth = kvHeads * hd;
    const hidden = p.floats(m * d), normed = p.floats(m * d), attnOut = p.floats(m * qWidth);
    const proj = p.floats(m * d), q = p.floats(m * qWidth);
    const kNew = p.floats(m * kvWidth), vNew = p.floats(m * kvWidth);
    const gate = p.floats(m * inner), up = p.floats(m * inner);
    p.embed(hidden, w.embed, { inMap: w.subset?.inMap });
    const rope = p.ropeTables(w.ropeInvFreq);
    for (let layer = 0; layer < w.layers.length; layer++) {
      const L = w.layers[layer];
      p.rmsNorm(hidden, L.inputNorm, w.eps, normed);
      p.linears(normed, d, [
        { w: L.q, n: qWidth, bias: L.qBias, out: q },
        { w: L.k, n: kvWidth, bias: L.kBias, out: kNew },
        { w: L.v, n: kvWidth, bias: L.vBias, out: vNew },
      ]);
      p.rope(q, heads, rope, w.rope);
      p.rope(kNew, kvHeads, rope, w.rope);
      p.attention(
        layer,
        { at: q, stride: qWidth },
        { at: kNew, stride: kvWidth },
        { at: vNew, stride: kvWidth },
        attnOut,
      );
      p.linear(attnOut, qWidth, L.o, d, 0, proj);
      p.add(hidden, proj, m * d);
      p.rmsNorm(hidden, L.postNorm, w.eps, normed);
      p.linears(normed, d, [{ w: L.gate, n: inner, bias: 0, out: gate }, {
        w: L.up,
        n: inner,
        bias: 0,
        out: up,
      }]);
      p.siluMul(gate, up, m * inner);
      p.linear(gate, inner, L.down, d, 0, proj);
      p.add(hidden, proj, m * d);
      p.layerOutput(layer, hidden);
    }
    if (!p.wantsLogits) return;
    p.rmsNorm(hidden, w.norm, w.eps, normed);
    p.head(normed, w.head, w.subset);
  },
});
