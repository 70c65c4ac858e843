/**
 * The GPT-2 family on the kernel backend: its graph reader ({@linkcode gpt2GraphWeights}: which
 * initializer is which weight, by data flow, over the shared queries of ../transformer_weights.ts)
 * and its forward recipe ({@linkcode gpt2}: learned positions, pre-LayerNorm blocks with a fused
 * q|k|v projection and a tanh-GELU MLP, a final LayerNorm, a head tied to the token embedding or
 * not).
 *
 * @module
 */
import type { ModelConfig } from "../../../model/config.ts";
import { InvalidModelError } from "../../../model/errors.ts";
import type { OnnxGraph } from "../../../onnx/graph.ts";
import { formatDims, isFloatTensor, tensorOf } from "../../../onnx/queries.ts";
import type { ForwardPass, HeadAt, LinearAt, LinearMemory } from "../ops.ts";
import {
  biasOf,
  buildIndex,
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
  tidy,
  tokenEmbedding,
  type TransformerWeightsOptions,
  vector,
  type WeightAndBias,
} from "../transformer_weights.ts";
import type { KernelFamily, KernelModel } from "./mod.ts";

/** One GPT-2 block (hidden d, MLP width n). */
export interface Gpt2LayerWeights {
  /** LayerNorm before attention: `[d]`, `[d]`. */
  ln1: WeightAndBias;
  /** Fused query|key|value projection (`c_attn`): `[d, 3d]`, bias `[3d]`, columns q then k then v. */
  qkv: WeightAndBias;
  /** Attention output projection: `[d, d]`, `[d]`. */
  proj: WeightAndBias;
  /** LayerNorm before the MLP: `[d]`, `[d]`. */
  ln2: WeightAndBias;
  /** MLP up projection (`c_fc`): `[d, n]`, `[n]`. */
  fc: WeightAndBias;
  /** MLP down projection (`c_proj`): `[n, d]`, `[d]`. */
  fcProj: WeightAndBias;
}

/** The weights of a GPT-2 graph. */
export interface Gpt2Weights {
  /** Family tag. */
  family: "gpt2";
  /** Token embedding `[vocab, d]`. */
  wte: Float32Array;
  /** Position embedding `[maxLength, d]`. */
  wpe: Float32Array;
  /** Blocks in order. */
  layers: Gpt2LayerWeights[];
  /** Final LayerNorm `[d]`, `[d]`. */
  lnf: WeightAndBias;
  /** LM head (tied: `wte` itself, "vocab-major"). */
  head: HeadWeight;
  /** LayerNorm epsilon (the graph's, float32-exact or its shortest decimal form). */
  eps: number;
  /** MLP activation the graph computes: tanh-approximated GELU (`gelu_new`) or erf GELU. */
  activation: "gelu_tanh" | "gelu_erf";
  /** Layers whose residual stream the graph outputs as `hidden_states.{i}`, ascending (see `exposedHiddenStates`). */
  hiddenStates?: number[];
}

// ---------------------------------------------------------------------------------------------
// The reader

function gpt2FromIndex(ix: Index, options: TransformerWeightsOptions): Gpt2Weights {
  const { config } = ix;
  const d = config.hiddenSize, L = config.numLayers;
  const { gather, init: wteInit, inMap } = tokenEmbedding(ix);
  if (inMap) {
    fail(
      config,
      "the token embedding is indexed through a token map: a vocabulary subset is only read for Llama graphs",
    );
  }
  const wte = floats(ix, wteInit, "token embedding");
  const positions = ix.graph.nodes.filter((n) => {
    const t = n !== gather && n.opType === "Gather" ? tensorOf(ix, n.inputs[0]) : undefined;
    return t !== undefined && isFloatTensor(t) && t.dims.length === 2 && t.name !== wteInit.name;
  });
  if (positions.length !== 1) {
    fail(
      config,
      `expected one position-embedding Gather besides the token embedding, got ${positions.length}`,
    );
  }
  const wpeInit = tensorOf(ix, positions[0].inputs[0])!;
  if (wpeInit.dims[0] !== config.maxLength || wpeInit.dims[1] !== d) {
    fail(
      config,
      `the position embedding "${wpeInit.name}" is ${
        formatDims(wpeInit.dims)
      }, expected [${config.maxLength}, ${d}] (n_positions, n_embd)`,
    );
  }
  const { head, linear: headLinear } = headOf(ix, wteInit, wte);
  const body = ix.linears.slice(0, -1);
  if (body.length !== 4 * L) {
    fail(
      config,
      `expected ${4 * L} projections before the head (4 per layer × ${L} layers), got ${body.length}`,
    );
  }
  const inner = options.intermediateSize ?? body[2].out;
  let eps: number | undefined;
  let activation: Gpt2Weights["activation"] | undefined;
  const ln = (l: Linear, what: string): WeightAndBias => {
    const n = normBefore(ix, l, what);
    if (n.bias === undefined) fail(config, `the norm before ${what} has no bias: not a GPT-2 LayerNorm`);
    if (eps === undefined) eps = n.eps;
    else if (Math.fround(eps) !== Math.fround(n.eps)) {
      fail(config, `the norm before ${what} has epsilon ${n.eps}, the others ${eps}`);
    }
    return {
      weight: vector(ix, n.weight, d, `${what} norm weight`),
      bias: vector(ix, n.bias, d, `${what} norm bias`),
    };
  };
  const withBias = (l: Linear, what: string): WeightAndBias => {
    const b = biasOf(ix, l);
    if (!b) fail(config, `${what} (weight "${l.init.name}") has no bias Add after it`);
    return { weight: linearWeight(ix, l, `${what} weight`), bias: vector(ix, b.name, l.out, `${what} bias`) };
  };
  const layers: Gpt2LayerWeights[] = [];
  for (let i = 0; i < L; i++) {
    const at = (j: number) => body[4 * i + j];
    const p = `layer ${i}`;
    const cAttn = expectLinear(ix, at(0), d, 3 * d, `${p} c_attn (q|k|v)`);
    const proj = expectLinear(ix, at(1), d, d, `${p} attention output projection`);
    const fc = expectLinear(ix, at(2), d, inner, `${p} c_fc`);
    const fcProj = expectLinear(ix, at(3), inner, d, `${p} mlp projection`);
    const act = downstream(ix, [fc.output]).nodes;
    const kind = [...act].some((n) =>
        n.opType === "Erf" || (n.opType === "Gelu" && n.attributes.approximate !== "tanh")
      )
      ? "gelu_erf"
      : [...act].some((n) => n.opType === "Tanh" || n.opType === "FastGelu" || n.opType === "Gelu")
      ? "gelu_tanh"
      : undefined;
    if (!kind) fail(config, `${p}: no GELU (Tanh or Erf) found between c_fc and the mlp projection`);
    if (activation !== undefined && activation !== kind) {
      fail(
        config,
        `${p} uses ${kind}, earlier layers ${activation}`,
      );
    }
    activation = kind;
    layers.push({
      ln1: ln(cAttn, `${p} c_attn`),
      qkv: withBias(cAttn, `${p} c_attn`),
      proj: withBias(proj, `${p} attention output projection`),
      ln2: ln(fc, `${p} c_fc`),
      fc: withBias(fc, `${p} c_fc`),
      fcProj: withBias(fcProj, `${p} mlp projection`),
    });
  }
  const lnf = ln(headLinear, "the LM head");
  if (biasOf(ix, headLinear)) fail(config, "the LM head has a bias, which GPT-2 does not");
  return {
    family: "gpt2",
    wte,
    wpe: floats(ix, wpeInit, "position embedding"),
    layers,
    lnf,
    head,
    eps: tidy(eps!),
    activation: activation!,
    hiddenStates: exposedHiddenStates(ix.graph, layers.map((_, i) => body[4 * i + 3].node), config),
  };
}

/**
 * Finds every weight of a GPT-2 decoder graph by data flow (see ../transformer_weights.ts), checks
 * its shape against `config`, and returns float32 copies (fp16 converted), linear layers
 * `[in, out]` (transposed when the graph stores `[out, in]`).
 *
 * @param graph The graph ({@linkcode readOnnxGraph}).
 * @param config The model's config.
 * @param options Extra sizes to check (the MLP width).
 * @returns The weights; a tied head shares the embedding's array.
 * @throws {InvalidModelError} a quantized graph (MatMulNBits, DequantizeLinear, integer weights:
 *   "only fp32/fp16 MatMul graphs are supported"), a weight whose shape disagrees with the config,
 *   a missing or extra projection, or a structure this reader does not recognise (no LayerNorm
 *   before a projection, no GELU, ...), named with the values got.
 * @example
 * ```ts ignore
 * import { readOnnxGraph } from "../../../onnx/mod.ts";
 * import { parseModelConfig } from "../../../model/config.ts";
 * import { gpt2GraphWeights } from "./gpt2.ts";
 * const graph = readOnnxGraph(await Deno.readFile("models/target/onnx/model.onnx"));
 * const config = parseModelConfig(JSON.parse(await Deno.readTextFile("models/target/config.json")));
 * console.log(gpt2GraphWeights(graph, config).activation);
 * ```
 */
export function gpt2GraphWeights(
  graph: OnnxGraph,
  config: ModelConfig,
  options: TransformerWeightsOptions = {},
): Gpt2Weights {
  return gpt2FromIndex(buildIndex(graph, config), options);
}

// ---------------------------------------------------------------------------------------------
// Placement and the forward recipe

/** One GPT-2 block's weights in the kernel's memory (byte offsets; biases and norms 0 = absent). */
interface Gpt2LayerAt {
  ln1: number;
  ln1Bias: number;
  ln2: number;
  ln2Bias: number;
  qkv: LinearAt;
  qkvBias: number;
  proj: LinearAt;
  projBias: number;
  fc: LinearAt;
  fcBias: number;
  fcProj: LinearAt;
  fcProjBias: number;
}

/** A GPT-2 model in the kernel's memory. */
export interface Gpt2Model extends KernelModel {
  /** Token embedding `[vocab, d]`. */
  embed: LinearAt;
  /** Position embedding `[maxPositions, d]`. */
  positions: number;
  /** Rows of the position embedding. */
  maxPositions: number;
  /** The blocks. */
  layers: Gpt2LayerAt[];
  /** Final LayerNorm. */
  lnf: number;
  lnfBias: number;
  /** The head. */
  head: HeadAt;
  /** LayerNorm epsilon. */
  eps: number;
  /** MLP width. */
  inner: number;
}

/**
 * GPT-2 on the kernel backend: reads fp32 / fp16 graphs ({@linkcode gpt2GraphWeights}, tanh GELU
 * only), and runs embeddings + positions → blocks (LayerNorm, fused q|k|v, attention, output
 * projection; LayerNorm, c_fc, GELU, c_proj; each added to the residual stream) → final LayerNorm
 * → head.
 */
export const gpt2: KernelFamily<Gpt2Weights, Gpt2Model> = Object.freeze({
  name: "gpt2",
  read(graph: OnnxGraph, config: ModelConfig): Gpt2Weights {
    const w = gpt2GraphWeights(graph, config);
    if (w.activation !== "gelu_tanh") {
      throw new InvalidModelError(`only GPT-2's tanh GELU is implemented, got ${w.activation}`);
    }
    return w;
  },
  place(mem: LinearMemory, w: Gpt2Weights, config: ModelConfig): Gpt2Model {
    const d = config.hiddenSize;
    const embed = mem.linear(w.wte);
    const positions = mem.vector(w.wpe);
    const layers = w.layers.map((l) => ({
      ln1: mem.vector(l.ln1.weight),
      ln1Bias: mem.vector(l.ln1.bias),
      ln2: mem.vector(l.ln2.weight),
      ln2Bias: mem.vector(l.ln2.bias),
      qkv: mem.linear(l.qkv.weight),
      qkvBias: mem.vector(l.qkv.bias),
      proj: mem.linear(l.proj.weight),
      projBias: mem.vector(l.proj.bias),
      fc: mem.linear(l.fc.weight),
      fcBias: mem.vector(l.fc.bias),
      fcProj: mem.linear(l.fcProj.weight),
      fcProjBias: mem.vector(l.fcProj.bias),
    }));
    return {
      embed,
      positions,
      maxPositions: w.wpe.length / d,
      layers,
      lnf: mem.vector(w.lnf.weight),
      lnfBias: mem.vector(w.lnf.bias),
      head: mem.head(w.head, w.wte, embed),
      eps: w.eps, // read from the graph
      inner: w.layers[0].fc.weight.length / d,
      hiddenStates: w.hiddenStates ?? [],
    };
  },
  forward(p: ForwardPass, w: Gpt2Model): void {
    const { m, d } = p, inner = w.inner;
    const hidden = p.floats(m * d), normed = p.floats(m * d), attnOut = p.floats(m * d);
    const proj = p.floats(m * d), qkv = p.floats(m * 3 * d), fc = p.floats(m * inner);
    p.embed(hidden, w.embed, { positions: w.positions, maxPositions: w.maxPositions });
    // q, k and v: columns [0, d), [d, 2d), [2d, 3d) of the fused projection's rows
    const q = { at: qkv, stride: 3 * d }, k = { at: qkv + 4 * d, stride: 3 * d };
    const v = { at: qkv + 8 * d, stride: 3 * d };
    for (let layer = 0; layer < w.layers.length; layer++) {
      const L = w.layers[layer];
      p.layerNorm(hidden, L.ln1, L.ln1Bias, w.eps, normed);
      p.linear(normed, d, L.qkv, 3 * d, L.qkvBias, qkv);
      p.attention(layer, q, k, v, attnOut);
      p.linear(attnOut, d, L.proj, d, L.projBias, proj);
      p.add(hidden, proj, m * d);
      p.layerNorm(hidden, L.ln2, L.ln2Bias, w.eps, normed);
      p.linear(normed, d, L.fc, inner, L.fcBias, fc);
      p.gelu(fc, m * inner);
      p.linear(fc, inner, L.fcProj, d, L.fcProjBias, proj);
      p.add(hidden, proj, m * d);
      p.layerOutput(layer, hidden);
    }
    if (!p.wantsLogits) return;
    p.layerNorm(hidden, w.lnf, w.lnfBias, w.eps, normed);
    p.head(normed, w.head);
  },
});
