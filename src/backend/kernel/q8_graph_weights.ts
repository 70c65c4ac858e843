/**
 * The weights of an 8-bit Llama graph written by our GGUF→ONNX converter
 * (`convertGgufToOnnx`, `src/convert/llama_onnx.ts`: `model_quantized.onnx`) for the `kernel`
 * backend, kept 8-bit ({@linkcode Q8Weight}). Those graphs name their weights (`layers.N.attn.qkv`,
 * `blk.N.attn_norm.weight`, `lm_head`, …) and store each linear layer as `MatMulNBits` (8 bits,
 * blocks of 32, zero point 128) plus, for GGUF's `Q4_1`-style blocks, a minimum per block applied
 * as `MatMul(ReduceSum(x per block), mins)`. The embedding is the same quantized matrix as the
 * head (`Gather` of `lm_head.qweight`, minus `code_zero`, times its block scale). The Llama
 * family (families/llama.ts) reads such graphs with this reader, into its own weight type with
 * 8-bit linear weights (`LlamaWeights<Q8Weight>`), and runs them with the same recipe.
 *
 * @module
 */
import type { ModelConfig } from "../../model/config.ts";
import { InvalidModelError } from "../../model/errors.ts";
import { DataType } from "../../onnx/data_types.ts";
import type { OnnxGraph, OnnxInitializer } from "../../onnx/graph.ts";
import { nodeWithInput, usersOf } from "../../onnx/queries.ts";
import type { LlamaLayerWeights, LlamaWeights } from "./families/llama.ts";
import { Q8_BLOCK, type Q8Weight } from "./q8_weight.ts";
import { exposedHiddenStates } from "./transformer_weights.ts";

/** One decoder layer of an 8-bit converter graph: the linear weights 8-bit, the norms float32. */
export type LlamaQ8Layer = LlamaLayerWeights<Q8Weight>;

/**
 * An 8-bit converter graph's Llama weights: the head is the embedding (tied, one matrix, one
 * output per token), RoPE "half" (the converter restores Hugging Face's row order for q and k),
 * `ropeTheta` recovered from `rope_inv_freq[1]` (informational), `eps` the graph's `rms_eps`, and
 * the layers whose residual stream the graph outputs as `hidden_states.{i}` (the converter's
 * `hiddenStates` option) checked by data flow ({@linkcode exposedHiddenStates}).
 */
export type LlamaQ8Weights = LlamaWeights<Q8Weight>;

/** Whether `graph` is an 8-bit converter graph (MatMulNBits nodes and a quantized `lm_head`). */
export function isConverterQ8Graph(graph: OnnxGraph): boolean {
  return graph.initializers.has("lm_head.qweight") && graph.nodes.some((n) => n.opType === "MatMulNBits");
}

function floats(init: OnnxInitializer): Float32Array {
  if (init.dataType !== DataType.FLOAT) {
    throw new InvalidModelError(`${init.name} must be float32, got data type ${init.dataType}`);
  }
  return new Float32Array(init.raw.slice().buffer);
}

/**
 * Reads an 8-bit converter graph's weights.
 *
 * @param graph The graph ({@linkcode readOnnxGraph}).
 * @param config The model config the shapes must agree with.
 * @returns The weights.
 * @throws {InvalidModelError} a weight is missing or shaped against the config, a MatMulNBits is
 *   not 8-bit with blocks of 32 or has explicit zero points, or the gate / up order cannot be told.
 */
export function converterQ8Weights(graph: OnnxGraph, config: ModelConfig): LlamaQ8Weights {
  const fail = (what: string): never => {
    throw new InvalidModelError(`Cannot map the 8-bit graph to llama weights: ${what}`);
  };
  const init = (name: string) => graph.initializers.get(name) ?? fail(`${name} is missing`);
  const d = config.hiddenSize, hd = config.headDim;
  for (const n of graph.nodes) {
    if (n.opType !== "MatMulNBits") continue;
    if (
      n.attributes.bits !== 8 || n.attributes.block_size !== Q8_BLOCK || n.inputs.length > 3 && n.inputs[3]
    ) {
      fail(
        `${n.name} must be 8-bit with blocks of ${Q8_BLOCK} and no zero_points, got bits ${n.attributes.bits}, ` +
          `block_size ${n.attributes.block_size}, ${n.inputs.length} inputs`,
      );
    }
  }
  /** The whole quantized matrix `base` (qweight [N, blocks, 32], scales, optional mins [blocks, N]). */
  const matrix = (base: string, k: number): Q8Weight => {
    const q = init(`${base}.qweight`);
    if (
      q.dataType !== DataType.UINT8 || q.dims.length !== 3 || q.dims[2] !== Q8_BLOCK ||
      q.dims[1] * Q8_BLOCK !== k
    ) {
      fail(
        `${base}.qweight must be uint8 [N, ${k / Q8_BLOCK}, ${Q8_BLOCK}], got type ${q.dataType} [${q.dims}]`,
      );
    }
    const n = q.dims[0], blocks = k / Q8_BLOCK;
    const codes = q.raw.subarray(0, n * k); // a view: the backend re-centres while copying
    const scales = floats(init(`${base}.scales`));
    if (scales.length !== n * blocks) {
      fail(`${base}.scales has ${scales.length} values, expected ${n * blocks}`);
    }
    const minsInit = graph.initializers.get(`${base}.mins`);
    let mins: Float32Array | undefined;
    if (minsInit) {
      const raw = floats(minsInit); // [blocks, N]
      if (raw.length !== n * blocks) fail(`${base}.mins has ${raw.length} values, expected ${n * blocks}`);
      mins = new Float32Array(n * blocks);
      for (let b = 0; b < blocks; b++) for (let j = 0; j < n; j++) mins[j * blocks + b] = raw[b * n + j];
    }
    return { kind: "q8", k, n, codes, scales, mins };
  };
  /** Outputs [from, from + count) of a quantized matrix. */
  const rows = (w: Q8Weight, from: number, count: number): Q8Weight => {
    const blocks = w.k / Q8_BLOCK;
    return {
      kind: "q8",
      k: w.k,
      n: count,
      codes: w.codes.subarray(from * w.k, (from + count) * w.k),
      scales: w.scales.slice(from * blocks, (from + count) * blocks),
      mins: w.mins?.slice(from * blocks, (from + count) * blocks),
    };
  };
  const shaped = (w: Q8Weight, name: string, k: number, n: number) => {
    if (w.k !== k || w.n !== n) fail(`${name} is [${w.k}, ${w.n}], expected [${k}, ${n}]`);
    return w;
  };
  const norm = (name: string) => {
    const w = floats(init(name));
    if (w.length !== d) fail(`${name} has ${w.length} values, expected ${d}`);
    return w;
  };
  const qWidth = config.numHeads * hd, kvWidth = config.numKvHeads * hd;
  const layers: LlamaQ8Layer[] = [];
  for (let i = 0; i < config.numLayers; i++) {
    const p = `layers.${i}`;
    let q: Q8Weight, k: Q8Weight, v: Q8Weight, gate: Q8Weight, up: Q8Weight;
    if (graph.initializers.has(`${p}.attn.qkv.qweight`)) {
      const qkv = shaped(matrix(`${p}.attn.qkv`, d), `${p}.attn.qkv`, d, qWidth + 2 * kvWidth);
      [q, k, v] = [rows(qkv, 0, qWidth), rows(qkv, qWidth, kvWidth), rows(qkv, qWidth + kvWidth, kvWidth)];
    } else {
      q = shaped(matrix(`${p}.attn.q`, d), `${p}.attn.q`, d, qWidth);
      k = shaped(matrix(`${p}.attn.k`, d), `${p}.attn.k`, d, kvWidth);
      v = shaped(matrix(`${p}.attn.v`, d), `${p}.attn.v`, d, kvWidth);
    }
    if (graph.initializers.has(`${p}.mlp.gate_up.qweight`)) {
      const gu = matrix(`${p}.mlp.gate_up`, d);
      if (gu.n % 2 !== 0) fail(`${p}.mlp.gate_up has ${gu.n} outputs, not two halves`);
      const inner = gu.n / 2;
      const first = gateComesFirst(graph, `${p}.mlp.gate_up.qweight`) ??
        fail(`cannot tell gate from up in ${p}`);
      [gate, up] = first
        ? [rows(gu, 0, inner), rows(gu, inner, inner)]
        : [rows(gu, inner, inner), rows(gu, 0, inner)];
    } else {
      gate = matrix(`${p}.mlp.gate`, d);
      up = shaped(matrix(`${p}.mlp.up`, d), `${p}.mlp.up`, d, gate.n);
    }
    const inner = gate.n;
    layers.push({
      inputNorm: norm(`blk.${i}.attn_norm.weight`),
      q,
      k,
      v,
      o: shaped(matrix(`${p}.attn.o`, qWidth), `${p}.attn.o`, qWidth, d),
      postNorm: norm(`blk.${i}.ffn_norm.weight`),
      gate,
      up,
      down: shaped(matrix(`${p}.mlp.down`, inner), `${p}.mlp.down`, inner, d),
    });
  }
  const embed = shaped(matrix("lm_head", d), "lm_head", d, config.vocabSize);
  const zero = graph.initializers.get("code_zero");
  if (zero && floats(zero)[0] !== 128) fail(`code_zero must be 128, got ${floats(zero)[0]}`);
  if (embed.mins) fail("lm_head has block minimums; the embedding lookup does not apply them");
  const ropeInvFreq = floats(init("rope_inv_freq"));
  if (ropeInvFreq.length !== hd / 2) {
    fail(`rope_inv_freq has ${ropeInvFreq.length} values, expected ${hd / 2}`);
  }
  const eps = floats(init("rms_eps"))[0];
  const downNodes = Array.from({ length: config.numLayers }, (_, i) => {
    const qweight = `layers.${i}.mlp.down.qweight`;
    return nodeWithInput(graph, "MatMulNBits", 1, qweight) ??
      fail(`no MatMulNBits multiplies by ${qweight}`);
  });
  const hiddenStates = exposedHiddenStates(graph, downNodes, config);
  return {
    family: "llama",
    embed,
    layers,
    norm: norm("output_norm.weight"),
    head: { weight: embed, layout: "vocab-major", tied: true }, // the embedding itself
    eps,
    ropeTheta: ropeInvFreq.length > 1 ? Math.round(1 / ropeInvFreq[1] ** (hd / 2)) : 10000,
    ropeInvFreq,
    rope: "half",
    hiddenStates,
  };
}

/**
 * Whether the first output of the Split after the MatMulNBits over `qweight` is the gate: the
 * half whose values reach a Sigmoid (SiLU = x·σ(x)) within a few nodes. Undefined when neither or
 * both do.
 */
function gateComesFirst(graph: OnnxGraph, qweight: string): boolean | undefined {
  const consumers = (name: string) => usersOf(graph, name);
  const matmul = nodeWithInput(graph, "MatMulNBits", 1, qweight);
  if (!matmul) return undefined;
  // MatMulNBits → Add (mins) → Split
  let frontier = [matmul.outputs[0]];
  let split: (typeof graph.nodes)[number] | undefined;
  for (let step = 0; step < 3 && !split; step++) {
    const next = frontier.flatMap(consumers);
    split = next.find((n) => n.opType === "Split");
    frontier = next.flatMap((n) => n.outputs);
  }
  if (!split || split.outputs.length !== 2) return undefined;
  const reachesSigmoid = (start: string) => {
    let names = [start];
    for (let step = 0; step < 2; step++) {
      const next = names.flatMap(consumers);
      if (next.some((n) => n.opType === "Sigmoid")) return true;
      names = next.flatMap((n) => n.outputs);
    }
    return false;
  };
  const [a, b] = split.outputs.map(reachesSigmoid);
  return a === b ? undefined : a;
}
