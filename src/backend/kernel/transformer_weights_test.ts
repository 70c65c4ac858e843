import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import onnxProto from "npm:onnx-proto@8.0.1";
import { type ModelConfig, parseModelConfig } from "../../model/config.ts";
import { InvalidModelError } from "../../model/errors.ts";
import {
  type GraphBuilder,
  type OnnxGraph,
  type OnnxInitializer,
  type OnnxNode,
  readOnnxGraph,
} from "../../onnx/mod.ts";
import type { TransformerWeightsOptions } from "./transformer_weights.ts";
import { gpt2GraphWeights, type Gpt2Weights } from "./families/gpt2.ts";
import { llamaGraphWeights, type LlamaWeights } from "./families/llama.ts";
import { haveModel, modelPath, MODELS_DIR } from "../../model/_testing.ts";
import { buildLlamaGraph } from "../../convert/llama_onnx.ts";
import { dequantize } from "../../convert/dequant.ts";
import { findTensor, type GgufFile, parseGguf } from "../../convert/gguf.ts";
import { GgmlType } from "../../convert/ggml_types.ts";
import { minimalConfig, TINY, tinyLlamaGguf, type TinyOptions } from "../../convert/_testing.ts";

// deno-lint-ignore no-explicit-any
const { onnx } = onnxProto as any;

/** The float graph reader of the config's family (families/gpt2.ts, families/llama.ts). */
const READERS = { gpt2: gpt2GraphWeights, llama: llamaGraphWeights };
function graphWeights(
  graph: OnnxGraph,
  config: ModelConfig,
  options?: TransformerWeightsOptions,
): Gpt2Weights | LlamaWeights {
  return READERS[config.family](graph, config, options);
}

// ---------------------------------------------------------------------------------------------
// helpers written independently of the code under test

function load(name: "target" | "draft"): { graph: OnnxGraph; config: ModelConfig } {
  const graph = readOnnxGraph(Deno.readFileSync(`${modelPath(name)}/onnx/model.onnx`));
  const config = parseModelConfig(JSON.parse(Deno.readTextFileSync(`${modelPath(name)}/config.json`)));
  return { graph, config };
}

/** Little-endian float32 values of an fp32 tensor, read with a DataView. */
function values(t: OnnxInitializer): Float32Array {
  assert.equal(t.dataType, 1);
  const view = new DataView(t.raw.buffer, t.raw.byteOffset, t.raw.byteLength);
  return Float32Array.from({ length: t.raw.length / 4 }, (_, i) => view.getFloat32(4 * i, true));
}

function init(graph: OnnxGraph, name: string): Float32Array {
  const t = graph.initializers.get(name);
  assert.ok(t, `initializer ${name}`);
  return values(t);
}

/** A copy of the graph whose nodes (and their input lists) may be edited. */
function editable(graph: OnnxGraph): OnnxGraph {
  return {
    ...graph,
    initializers: new Map(graph.initializers),
    nodes: graph.nodes.map((n) => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs] })),
  };
}

function nodeByOutput(graph: OnnxGraph, output: string): OnnxNode {
  const n = graph.nodes.find((x) => x.outputs.includes(output));
  assert.ok(n, `node producing ${output}`);
  return n;
}

function assertShape(x: Float32Array, n: number, what: string) {
  assert.ok(x instanceof Float32Array, `${what} is a Float32Array`);
  assert.equal(x.length, n, `${what}: ${x.length} elements, expected ${n}`);
  assert.equal(x.byteOffset % 4, 0, `${what} is 4-byte aligned`);
}

/** Float32 bits → float16 bits (round to nearest; test values are small normals). */
function toHalf(x: number): number {
  const f = new Float32Array([x]), u = new Uint32Array(f.buffer)[0];
  const sign = (u >>> 16) & 0x8000, exp = ((u >>> 23) & 0xff) - 127 + 15, mant = u & 0x7fffff;
  if (exp <= 0) return sign;
  return sign | ((exp << 10) + Math.round(mant / 8192));
}

function gpt2Shapes(w: Gpt2Weights, c: ModelConfig, inner: number) {
  const d = c.hiddenSize;
  assertShape(w.wte, c.vocabSize * d, "wte");
  assertShape(w.wpe, c.maxLength * d, "wpe");
  assert.equal(w.layers.length, c.numLayers);
  w.layers.forEach((l, i) => {
    for (
      const [what, x, n] of [
        ["ln1.weight", l.ln1.weight, d],
        ["ln1.bias", l.ln1.bias, d],
        ["qkv.weight", l.qkv.weight, d * 3 * d],
        ["qkv.bias", l.qkv.bias, 3 * d],
        ["proj.weight", l.proj.weight, d * d],
        ["proj.bias", l.proj.bias, d],
        ["ln2.weight", l.ln2.weight, d],
        ["ln2.bias", l.ln2.bias, d],
        ["fc.weight", l.fc.weight, d * inner],
        ["fc.bias", l.fc.bias, inner],
        ["fcProj.weight", l.fcProj.weight, inner * d],
        ["fcProj.bias", l.fcProj.bias, d],
      ] as const
    ) assertShape(x, n, `layer ${i} ${what}`);
  });
  assertShape(w.lnf.weight, d, "lnf.weight");
  assertShape(w.lnf.bias, d, "lnf.bias");
}

function llamaShapes(w: LlamaWeights, c: ModelConfig, inner: number) {
  const d = c.hiddenSize, q = c.numHeads * c.headDim, kv = c.numKvHeads * c.headDim;
  assertShape(w.embed, c.vocabSize * d, "embed");
  assert.equal(w.layers.length, c.numLayers);
  w.layers.forEach((l, i) => {
    for (
      const [what, x, n] of [
        ["inputNorm", l.inputNorm, d],
        ["q", l.q, d * q],
        ["k", l.k, d * kv],
        ["v", l.v, d * kv],
        ["o", l.o, q * d],
        ["postNorm", l.postNorm, d],
        ["gate", l.gate, d * inner],
        ["up", l.up, d * inner],
        ["down", l.down, inner * d],
      ] as const
    ) assertShape(x, n, `layer ${i} ${what}`);
  });
  assertShape(w.norm, d, "norm");
  assertShape(w.ropeInvFreq, c.headDim / 2, "ropeInvFreq");
  assertShape(w.head.weight, c.vocabSize * d, "head");
}

// ---------------------------------------------------------------------------------------------
// GPT-2 target

const target = haveModel("target");
const draft = haveModel("draft");

Deno.test({
  name: "graph weights: gpt2 target: shapes, names, tied head, eps, activation",
  ignore: !target,
  fn() {
    const { graph, config } = load("target");
    const w = graphWeights(graph, config, { intermediateSize: 1024 });
    assert.equal(w.family, "gpt2");
    if (w.family !== "gpt2") return;
    gpt2Shapes(w, config, 1024);
    assert.equal(w.head.weight, w.wte, "the tied head is the wte array itself");
    assert.equal(w.head.layout, "vocab-major");
    assert.equal(w.head.tied, true);
    assert.equal(w.eps, 1e-5);
    assert.equal(w.activation, "gelu_tanh");
    // the named initializers of the torch export are ground truth for norms and biases
    assert.deepEqual(w.wte, init(graph, "m.wte.weight"));
    assert.deepEqual(w.wpe, init(graph, "m.wpe.weight"));
    w.layers.forEach((l, i) => {
      assert.deepEqual(l.ln1.weight, init(graph, `m.h.${i}.ln_1.weight`));
      assert.deepEqual(l.ln1.bias, init(graph, `m.h.${i}.ln_1.bias`));
      assert.deepEqual(l.qkv.bias, init(graph, `m.h.${i}.c_attn.bias`));
      assert.deepEqual(l.proj.bias, init(graph, `m.h.${i}.attn_proj.bias`));
      assert.deepEqual(l.ln2.weight, init(graph, `m.h.${i}.ln_2.weight`));
      assert.deepEqual(l.ln2.bias, init(graph, `m.h.${i}.ln_2.bias`));
      assert.deepEqual(l.fc.bias, init(graph, `m.h.${i}.c_fc.bias`));
      assert.deepEqual(l.fcProj.bias, init(graph, `m.h.${i}.mlp_proj.bias`));
    });
    assert.deepEqual(w.lnf.weight, init(graph, "m.ln_f.weight"));
    assert.deepEqual(w.lnf.bias, init(graph, "m.ln_f.bias"));
  },
});

Deno.test({
  name: "graph weights: gpt2 target: each weight is the one the export's node names say",
  ignore: !target,
  fn() {
    const { graph, config } = load("target");
    const w = graphWeights(graph, config) as Gpt2Weights;
    // layer 0 c_attn: the first MatMul after the first LayerNormalization, scanning forward
    const firstLn = graph.nodes.findIndex((n) => n.opType === "LayerNormalization");
    const lnOut = graph.nodes[firstLn].outputs[0];
    const mm = graph.nodes.slice(firstLn).find((n) => n.opType === "MatMul" && n.inputs[0] === lnOut)!;
    assert.deepEqual(w.layers[0].qkv.weight, init(graph, mm.inputs[1]));
    // every layer: the MatMul nodes the export named /m/h.N/<module>/MatMul
    for (let i = 0; i < config.numLayers; i++) {
      const byModule = (m: string) =>
        init(graph, nodeByOutput(graph, `/m/h.${i}/${m}/MatMul_output_0`).inputs[1]);
      assert.deepEqual(w.layers[i].qkv.weight, byModule("c_attn"), `layer ${i} qkv`);
      assert.deepEqual(w.layers[i].proj.weight, byModule("attn_proj"), `layer ${i} proj`);
      assert.deepEqual(w.layers[i].fc.weight, byModule("c_fc"), `layer ${i} fc`);
      assert.deepEqual(w.layers[i].fcProj.weight, byModule("mlp_proj"), `layer ${i} fcProj`);
    }
  },
});

Deno.test({
  name: "graph weights: gpt2 target: a Transpose or Gemm transB weight is transposed to [in, out]",
  ignore: !target,
  fn() {
    const { graph, config } = load("target");
    const want = graphWeights(graph, config) as Gpt2Weights;
    const g = editable(graph);
    const d = 256, inner = 1024;
    // layer 0 c_fc [d, inner] stored as [inner, d] behind a Transpose; layer 1 c_fc as Gemm transB
    const transposedCopy = (name: string, rows: number, cols: number, newName: string) => {
      const src = init(graph, name), out = new Float32Array(rows * cols);
      for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c];
      g.initializers.set(newName, {
        name: newName,
        dims: [cols, rows],
        dataType: 1,
        raw: new Uint8Array(out.buffer),
      });
    };
    const fc0 = nodeByOutput(g, "/m/h.0/c_fc/MatMul_output_0");
    transposedCopy(fc0.inputs[1], d, inner, "fc0_t");
    g.nodes.splice(g.nodes.indexOf(fc0), 0, {
      opType: "Transpose",
      domain: "",
      name: "t",
      inputs: ["fc0_t"],
      outputs: ["fc0_w"],
      attributes: { perm: [1, 0] },
    });
    fc0.inputs[1] = "fc0_w";
    const fc1 = nodeByOutput(g, "/m/h.1/c_fc/MatMul_output_0");
    transposedCopy(fc1.inputs[1], d, inner, "fc1_t");
    Object.assign(fc1, { opType: "Gemm", inputs: [fc1.inputs[0], "fc1_t"], attributes: { transB: 1 } });
    const got = graphWeights(g, config) as Gpt2Weights;
    assert.deepEqual(got.layers[0].fc.weight, want.layers[0].fc.weight);
    assert.deepEqual(got.layers[1].fc.weight, want.layers[1].fc.weight);
  },
});

Deno.test({
  name: "graph weights: gpt2 target: fp16 weights are converted to float32",
  ignore: !target,
  fn() {
    const { graph, config } = load("target");
    const g = editable(graph);
    const name = nodeByOutput(g, "/m/h.2/c_attn/MatMul_output_0").inputs[1];
    const src = init(graph, name);
    const half = Uint16Array.from(src, toHalf);
    g.initializers.set(name, {
      ...g.initializers.get(name)!,
      dataType: 10,
      raw: new Uint8Array(half.buffer),
    });
    const w = graphWeights(g, config) as Gpt2Weights;
    let worst = 0;
    for (let i = 0; i < src.length; i++) {
      worst = Math.max(worst, Math.abs(w.layers[2].qkv.weight[i] - src[i]));
    }
    assert.ok(worst < 1e-3 && worst > 0, `fp16 round trip error ${worst}`);
  },
});

Deno.test({
  name: "graph weights: gpt2 target: swapped weights, a reordered graph or a wrong config throw",
  ignore: !target,
  fn() {
    const { graph, config } = load("target");
    // c_attn [256, 768] and c_fc [256, 1024] of layer 3 swapped
    const g = editable(graph);
    const a = nodeByOutput(g, "/m/h.3/c_attn/MatMul_output_0"),
      b = nodeByOutput(g, "/m/h.3/c_fc/MatMul_output_0");
    [a.inputs[1], b.inputs[1]] = [b.inputs[1], a.inputs[1]];
    assert.throws(
      () => graphWeights(g, config),
      (e) => e instanceof InvalidModelError && /layer 3/.test(e.message),
    );
    // the mlp projection node moved before c_attn in node order
    const h = editable(graph);
    const proj = nodeByOutput(h, "/m/h.0/mlp_proj/MatMul_output_0");
    h.nodes.splice(h.nodes.indexOf(proj), 1);
    h.nodes.splice(h.nodes.indexOf(nodeByOutput(h, "/m/h.0/c_attn/MatMul_output_0")), 0, proj);
    assert.throws(() => graphWeights(h, config), InvalidModelError);
    // configs that disagree with the graph
    for (
      const [what, bad] of [
        ["n_embd", { ...config, hiddenSize: 128 }],
        ["n_layer", { ...config, numLayers: 7 }],
        ["vocab", { ...config, vocabSize: 8000 }],
        ["n_positions", { ...config, maxLength: 512 }],
      ] as const
    ) {
      assert.throws(() => graphWeights(graph, bad), InvalidModelError, what);
    }
    assert.throws(
      () => graphWeights(graph, config, { intermediateSize: 3072 }),
      (e) => e instanceof InvalidModelError && /c_fc/.test(e.message) && /3072/.test(e.message),
    );
  },
});

Deno.test({
  name: "graph weights: renamed initializers change nothing (identification is by data flow)",
  ignore: !target || !draft,
  fn() {
    for (const name of ["target", "draft"] as const) {
      const { graph, config } = load(name);
      const want = graphWeights(graph, config);
      const rename = (
        s: string,
      ) => (graph.initializers.has(s) ? `w${[...graph.initializers.keys()].indexOf(s)}` : s);
      const g: OnnxGraph = {
        ...graph,
        initializers: new Map(
          [...graph.initializers].map(([k, v]) => [rename(k), { ...v, name: rename(k) }]),
        ),
        nodes: graph.nodes.map((n) => ({ ...n, inputs: n.inputs.map(rename) })),
      };
      assert.deepEqual(graphWeights(g, config), want, name);
    }
  },
});

// ---------------------------------------------------------------------------------------------
// Llama draft (torch export)

Deno.test({
  name: "graph weights: llama draft: shapes, names, tied head, rope, eps",
  ignore: !draft,
  fn() {
    const { graph, config } = load("draft");
    const w = graphWeights(graph, config) as LlamaWeights;
    assert.equal(w.family, "llama");
    llamaShapes(w, config, 128);
    assert.equal(w.head.weight, w.embed, "tied head is the embedding array itself");
    assert.equal(w.head.layout, "vocab-major");
    assert.equal(w.rope, "half");
    assert.equal(w.ropeTheta, 10000);
    assert.equal(w.eps, 1e-5);
    assert.deepEqual(w.embed, init(graph, "m.embed_tokens.weight"));
    assert.deepEqual(w.norm, init(graph, "m.norm.weight"));
    for (let i = 0; i < config.numLayers; i++) {
      const l = w.layers[i];
      assert.deepEqual(l.inputNorm, init(graph, `m.layers.${i}.input_layernorm.weight`));
      assert.deepEqual(l.postNorm, init(graph, `m.layers.${i}.post_attention_layernorm.weight`));
      const byModule = (m: string) =>
        init(graph, nodeByOutput(graph, `/m/layers.${i}/${m}/MatMul_output_0`).inputs[1]);
      assert.deepEqual(l.q, byModule("q_proj"));
      assert.deepEqual(l.k, byModule("k_proj"));
      assert.deepEqual(l.v, byModule("v_proj"));
      assert.deepEqual(l.o, byModule("o_proj"));
      assert.deepEqual(l.gate, byModule("gate_proj"));
      assert.deepEqual(l.up, byModule("up_proj"));
      assert.deepEqual(l.down, byModule("down_proj"));
      assert.notDeepEqual(l.gate, l.up);
      assert.equal(l.qBias, undefined);
    }
    // the HF inv_freq: 1 / θ^(2j / hd)
    for (let j = 0; j < 6; j++) assert.ok(Math.abs(w.ropeInvFreq[j] - 10000 ** (-2 * j / 12)) < 1e-6);
  },
});

Deno.test({
  name: "graph weights: llama draft: gate is the MatMul whose output reaches a Sigmoid",
  ignore: !draft,
  fn() {
    const { graph, config } = load("draft");
    const sigmoidWeights = graph.nodes.filter((n) => n.opType === "Sigmoid").map((s) => {
      const mm = nodeByOutput(graph, s.inputs[0]);
      assert.equal(mm.opType, "MatMul");
      return init(graph, mm.inputs[1]);
    });
    assert.equal(sigmoidWeights.length, config.numLayers);
    const w = graphWeights(graph, config) as LlamaWeights;
    w.layers.forEach((l, i) => assert.deepEqual(l.gate, sigmoidWeights[i]));
  },
});

Deno.test({
  name: "graph weights: llama draft: roles follow the data flow when weights or nodes are swapped",
  ignore: !draft,
  fn() {
    const { graph, config } = load("draft");
    const want = graphWeights(graph, config) as LlamaWeights;
    // k and v of layer 0 (same shape) swapped: k is still what reaches present.0.key
    const g = editable(graph);
    const k = nodeByOutput(g, "/m/layers.0/k_proj/MatMul_output_0");
    const v = nodeByOutput(g, "/m/layers.0/v_proj/MatMul_output_0");
    [k.inputs[1], v.inputs[1]] = [v.inputs[1], k.inputs[1]];
    let got = graphWeights(g, config) as LlamaWeights;
    assert.deepEqual(got.layers[0].k, want.layers[0].v);
    assert.deepEqual(got.layers[0].v, want.layers[0].k);
    // gate and up of layer 1 swapped in node order only: nothing changes
    const h = editable(graph);
    const gate = nodeByOutput(h, "/m/layers.1/gate_proj/MatMul_output_0");
    const up = nodeByOutput(h, "/m/layers.1/up_proj/MatMul_output_0");
    const [gi, ui] = [h.nodes.indexOf(gate), h.nodes.indexOf(up)];
    [h.nodes[gi], h.nodes[ui]] = [up, gate];
    got = graphWeights(h, config) as LlamaWeights;
    assert.deepEqual(got.layers[1].gate, want.layers[1].gate);
    assert.deepEqual(got.layers[1].up, want.layers[1].up);
    // q [48, 48] and gate [48, 128] swapped: a shape mismatch
    const m = editable(graph);
    const q = nodeByOutput(m, "/m/layers.0/q_proj/MatMul_output_0");
    const gt = nodeByOutput(m, "/m/layers.0/gate_proj/MatMul_output_0");
    [q.inputs[1], gt.inputs[1]] = [gt.inputs[1], q.inputs[1]];
    assert.throws(
      () => graphWeights(m, config),
      (e) => e instanceof InvalidModelError && /layer 0/.test(e.message),
    );
    // o_proj of layer 1 moved to the front of the graph
    const r = editable(graph);
    const o = nodeByOutput(r, "/m/layers.1/o_proj/MatMul_output_0");
    r.nodes.splice(r.nodes.indexOf(o), 1);
    r.nodes.unshift(o);
    assert.throws(() => graphWeights(r, config), InvalidModelError);
  },
});

Deno.test({
  name: "graph weights: llama draft: a config that disagrees with the graph throws",
  ignore: !draft,
  fn() {
    const { graph, config } = load("draft");
    for (
      const [what, bad] of [
        ["hidden_size", { ...config, hiddenSize: 64 }],
        ["num_hidden_layers", { ...config, numLayers: 3 }],
        ["num_hidden_layers", { ...config, numLayers: 1 }],
        ["num_key_value_heads", { ...config, numKvHeads: 4 }],
        ["head_dim", { ...config, headDim: 16 }],
        ["vocab_size", { ...config, vocabSize: 8193 }],
      ] as const
    ) {
      assert.throws(() => graphWeights(graph, bad), InvalidModelError, what);
    }
    assert.throws(() => graphWeights(graph, config, { intermediateSize: 256 }), InvalidModelError);
    // a llama graph read as gpt2
    const asGpt2: ModelConfig = { ...config, family: "gpt2", modelType: "gpt2", maxLength: 256 };
    assert.throws(() => graphWeights(graph, asGpt2), InvalidModelError);
  },
});

// ---------------------------------------------------------------------------------------------
// Llama graphs from our GGUF → ONNX converter (in memory)

function valueInfo(v: { name: string; dataType: number; dims: (number | string)[] | null }) {
  return {
    name: v.name,
    type: {
      tensorType: v.dims === null ? { elemType: v.dataType } : {
        elemType: v.dataType,
        shape: { dim: v.dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

/** The converter's graph as ModelProto bytes, encoded with onnx-proto (not the streaming writer). */
function encode(graph: GraphBuilder, opsets: Record<string, number>): Uint8Array {
  const bytes = onnx.ModelProto.encode({
    irVersion: 8,
    opsetImport: Object.entries(opsets).map(([domain, version]) => ({ domain, version })),
    graph: {
      name: "g",
      node: graph.nodes,
      input: graph.inputs.map(valueInfo),
      output: graph.outputs.map(valueInfo),
      initializer: graph.initializers.map((i) => ({
        name: i.name,
        dims: i.dims,
        dataType: i.dataType,
        rawData: i.produce(),
      })),
    },
  }).finish();
  // a plain Uint8Array, as Deno.readFile gives (protobufjs may return a Node Buffer)
  return new Uint8Array(bytes);
}

function converted(options: TinyOptions, precision: "fp32" | "q4" | "q8" = "fp32") {
  const bytes = tinyLlamaGguf(options);
  const file = parseGguf(bytes);
  const { graph, opsets } = buildLlamaGraph(file, bytes, { precision });
  const config = parseModelConfig(minimalConfig(file));
  return { file, bytes, graph: readOnnxGraph(encode(graph, opsets)), config };
}

/** The GGUF matrix as [in, out] (ggml stores [out rows of in]); `hfRows` undoes llama.cpp's q/k permutation. */
function ggufLinear(file: GgufFile, bytes: Uint8Array, name: string, heads = 0): Float32Array {
  const t = findTensor(file, name)!;
  const [k, n] = t.dims, w = dequantize(bytes, t), out = new Float32Array(k * n), hd = heads ? n / heads : 0;
  for (let r = 0; r < n; r++) {
    // HF row h·hd + s·hd/2 + j is GGUF row h·hd + 2j + s (llama.cpp interleaves the two halves)
    let src = r;
    if (heads) {
      const h = Math.floor(r / hd), s = Math.floor((r % hd) / (hd / 2)), j = r % (hd / 2);
      src = h * hd + 2 * j + s;
    }
    for (let c = 0; c < k; c++) out[c * n + r] = w[src * k + c];
  }
  return out;
}

function checkConverted(options: TinyOptions, tied: boolean) {
  const { file, bytes, graph, config } = converted(options);
  const w = graphWeights(graph, config, { intermediateSize: TINY.ffn }) as LlamaWeights;
  assert.equal(w.family, "llama");
  llamaShapes(w, config, TINY.ffn);
  assert.equal(w.rope, "half");
  assert.equal(w.ropeTheta, 10000);
  assert.equal(w.eps, 1e-5);
  assert.deepEqual(w.embed, dequantize(bytes, findTensor(file, "token_embd.weight")!));
  assert.deepEqual(w.norm, dequantize(bytes, findTensor(file, "output_norm.weight")!));
  assert.equal(w.head.tied, tied);
  assert.equal(w.head.layout, "vocab-major");
  if (tied) assert.equal(w.head.weight, w.embed);
  else assert.deepEqual(w.head.weight, dequantize(bytes, findTensor(file, "output.weight")!));
  const gguf = (n: string, heads = 0) => ggufLinear(file, bytes, n, heads);
  w.layers.forEach((l, i) => {
    assert.deepEqual(l.inputNorm, dequantize(bytes, findTensor(file, `blk.${i}.attn_norm.weight`)!));
    assert.deepEqual(l.postNorm, dequantize(bytes, findTensor(file, `blk.${i}.ffn_norm.weight`)!));
    assert.deepEqual(l.q, gguf(`blk.${i}.attn_q.weight`, TINY.heads), `layer ${i} q`);
    assert.deepEqual(l.k, gguf(`blk.${i}.attn_k.weight`, TINY.kvHeads), `layer ${i} k`);
    assert.deepEqual(l.v, gguf(`blk.${i}.attn_v.weight`), `layer ${i} v`);
    assert.deepEqual(l.o, gguf(`blk.${i}.attn_output.weight`), `layer ${i} o`);
    assert.deepEqual(l.gate, gguf(`blk.${i}.ffn_gate.weight`), `layer ${i} gate`);
    assert.deepEqual(l.up, gguf(`blk.${i}.ffn_up.weight`), `layer ${i} up`);
    assert.deepEqual(l.down, gguf(`blk.${i}.ffn_down.weight`), `layer ${i} down`);
  });
}

Deno.test("graph weights: converter graph, fused q|k|v and gate|up, tied head", () => {
  checkConverted({ matrixType: GgmlType.F32 }, true);
});

Deno.test("graph weights: converter graph, layer 1 unfused (mixed types), untied head", () => {
  checkConverted({ matrixType: GgmlType.F32, mixedType: GgmlType.F16, outputType: GgmlType.F32 }, false);
});

Deno.test("graph weights: converter q4 / q8 graphs are refused (MatMulNBits)", () => {
  for (const precision of ["q4", "q8"] as const) {
    const { graph, config } = converted({}, precision);
    assert.throws(
      () => graphWeights(graph, config),
      (e) =>
        e instanceof InvalidModelError && /MatMulNBits/.test(e.message) &&
        /only fp32\/fp16 MatMul graphs are supported/.test(e.message),
      precision,
    );
  }
});

// ---------------------------------------------------------------------------------------------
// SmolLM2-135M converted (538 MB fp32), when present

const SMOLLM2 = `${MODELS_DIR}smollm2-135m-instruct`;
const haveSmol = existsSync(`${SMOLLM2}/onnx/model.onnx`) && existsSync(`${SMOLLM2}/config.json`);
if (!haveSmol) console.warn(`SKIP: ${SMOLLM2}/onnx/model.onnx is missing; its test is ignored`);

Deno.test({
  name: "graph weights: smollm2-135m converted fp32 graph maps",
  ignore: !haveSmol,
  fn() {
    const graph = readOnnxGraph(Deno.readFileSync(`${SMOLLM2}/onnx/model.onnx`));
    const json = JSON.parse(Deno.readTextFileSync(`${SMOLLM2}/config.json`));
    const config = parseModelConfig(json);
    const w = graphWeights(graph, config, { intermediateSize: json.intermediate_size }) as LlamaWeights;
    llamaShapes(w, config, json.intermediate_size);
    assert.equal(w.rope, "half");
    assert.equal(w.ropeTheta, json.rope_theta);
    assert.equal(w.eps, json.rms_norm_eps);
    assert.equal(w.head.weight, w.embed);
    // layer 29: k is columns [576, 768) of the fused q|k|v initializer, up columns [1536, 3072) of gate|up
    const d = 576,
      qkv = init(graph, "layers.29.attn.qkv.weight"),
      gu = init(graph, "layers.29.mlp.gate_up.weight");
    for (const [r, c] of [[0, 0], [17, 100], [575, 191]]) {
      assert.equal(w.layers[29].k[r * 192 + c], qkv[r * 960 + 576 + c]);
      assert.equal(w.layers[29].up[r * 1536 + c], gu[r * 3072 + 1536 + c]);
    }
    assert.equal(qkv.length, d * 960);
  },
});

// ---------------------------------------------------------------------------------------------
// SmolLM2 vocabulary-subset draft (torch export), when present

const SUBSET = `${MODELS_DIR}smollm2-draft`;
const haveSubset = existsSync(`${SUBSET}/onnx/model.onnx`) && existsSync(`${SUBSET}/config.json`);
if (!haveSubset) console.warn(`SKIP: ${SUBSET}/onnx/model.onnx is missing; its tests are ignored`);

function loadSubset() {
  const graph = readOnnxGraph(Deno.readFileSync(`${SUBSET}/onnx/model.onnx`));
  const json = JSON.parse(Deno.readTextFileSync(`${SUBSET}/config.json`));
  return { graph, json, config: parseModelConfig(json) };
}

/** An int32 / int64 initializer's values, read with a DataView. */
function intInit(graph: OnnxGraph, name: string): number[] {
  const t = graph.initializers.get(name);
  assert.ok(t, `initializer ${name}`);
  const view = new DataView(t.raw.buffer, t.raw.byteOffset, t.raw.byteLength);
  if (t.dataType === 6) return Array.from({ length: t.raw.length / 4 }, (_, i) => view.getInt32(4 * i, true));
  assert.equal(t.dataType, 7);
  return Array.from({ length: t.raw.length / 8 }, (_, i) => Number(view.getBigInt64(8 * i, true)));
}

/** The int initializer behind the ScatterElements' indices (the export's name: onnx::Expand_404). */
function scatterIndices(graph: OnnxGraph): string {
  const scatter = graph.nodes.find((n) => n.opType === "ScatterElements")!;
  const expand = nodeByOutput(graph, scatter.inputs[1]);
  assert.equal(expand.opType, "Expand");
  assert.ok(graph.initializers.has(expand.inputs[0]));
  return expand.inputs[0];
}

Deno.test({
  name: "graph weights: smollm2 vocabulary-subset draft: token map, head ids, fill",
  ignore: !haveSubset,
  fn() {
    const { graph, json, config } = loadSubset();
    const V = json.vocab_size, H = json.spectr_head_tokens, d = json.hidden_size;
    assert.equal(V, 49152);
    assert.equal(H, 6144);
    const w = graphWeights(graph, config, { intermediateSize: json.intermediate_size }) as LlamaWeights;
    assert.equal(w.family, "llama");
    const s = w.vocabSubset;
    assert.ok(s, "the subset is detected");
    // the embedding (and the tied head) have H + 1 rows
    llamaShapes(w, { ...config, vocabSize: H + 1 }, json.intermediate_size);
    assert.equal(w.embed.length, (H + 1) * d);
    assert.equal(w.head.weight, w.embed, "the head is the embedding array itself");
    assert.equal(w.head.layout, "vocab-major");
    assert.equal(w.head.tied, true);
    assert.deepEqual(w.embed, init(graph, "m.embed_tokens.weight"));
    assert.equal(w.rope, "half");
    assert.equal(w.ropeTheta, json.rope_theta);
    assert.equal(w.eps, json.rms_norm_eps);
    // inMap: V entries, every one a row in [0, H + 1), equal to the export's m.in_map
    assert.ok(s.inMap instanceof Int32Array);
    assert.equal(s.inMap.length, V);
    assert.ok(s.inMap.every((r) => r >= 0 && r < H + 1));
    assert.deepEqual(Array.from(s.inMap), intInit(graph, "m.in_map"));
    // headIds: H distinct token ids in [0, V), equal to the ScatterElements' indices initializer
    assert.ok(s.headIds instanceof Int32Array);
    assert.equal(s.headIds.length, H);
    assert.equal(new Set(s.headIds).size, H);
    assert.ok(s.headIds.every((id) => id >= 0 && id < V));
    assert.deepEqual(Array.from(s.headIds), intInit(graph, scatterIndices(graph)));
    // Found on this file: the round trip holds for every head row (inMap[headIds[i]] === i for all
    // 6,144 rows), and the other 49,152 − 6,144 = 43,008 token ids all map to the shared row 6144,
    // which the head never scores (the Slice keeps rows 0 … 6143).
    for (let i = 0; i < H; i++) assert.equal(s.inMap[s.headIds[i]], i, `head row ${i}`);
    assert.equal(s.inMap.filter((r) => r === H).length, V - H);
    // fill: the ConstantOfShape's value attribute, −∞ in this file
    const cos = graph.nodes.find((n) => n.opType === "ConstantOfShape")!;
    const value = cos.tensorAttributes!.value;
    assert.equal(value.dataType, 1);
    assert.equal(new DataView(value.raw.buffer, value.raw.byteOffset).getFloat32(0, true), -Infinity);
    assert.equal(s.fill, -Infinity);
    // renamed initializers change nothing (data flow, not names)
    const rename = (
      x: string,
    ) => (graph.initializers.has(x) ? `w${[...graph.initializers.keys()].indexOf(x)}` : x);
    const renamed: OnnxGraph = {
      ...graph,
      initializers: new Map([...graph.initializers].map(([k, v]) => [rename(k), { ...v, name: rename(k) }])),
      nodes: graph.nodes.map((n) => ({ ...n, inputs: n.inputs.map(rename) })),
    };
    assert.deepEqual(graphWeights(renamed, config), w);
  },
});

Deno.test({
  name: "graph weights: smollm2 vocabulary-subset draft: a broken subset structure throws",
  ignore: !haveSubset,
  fn() {
    const { graph, config } = loadSubset();
    const ids = scatterIndices(graph);
    const withInit = (name: string, edit: (t: OnnxInitializer) => OnnxInitializer) => {
      const g = editable(graph);
      g.initializers.set(name, edit(g.initializers.get(name)!));
      return g;
    };
    const throwsWith = (g: OnnxGraph, pattern: RegExp, what: string) =>
      assert.throws(
        () => graphWeights(g, config),
        (e) => e instanceof InvalidModelError && pattern.test(e.message),
        what,
      );
    // the ScatterElements indices shortened by one id: 6143 ids for 6144 head rows
    throwsWith(
      withInit(ids, (t) => ({ ...t, dims: [1, 6143], raw: t.raw.slice(0, 6143 * 8) })),
      /indices.*6143.*expected 6144/,
      "shortened indices",
    );
    // a head id repeated
    throwsWith(
      withInit(ids, (t) => {
        const raw = t.raw.slice();
        raw.set(raw.subarray(0, 8), 8); // id of row 1 := id of row 0
        return { ...t, raw };
      }),
      /head row 1 .*already taken/,
      "repeated id",
    );
    // a head id outside the vocabulary
    throwsWith(
      withInit(ids, (t) => {
        const raw = t.raw.slice();
        new DataView(raw.buffer).setBigInt64(8 * 5, 49152n, true);
        return { ...t, raw };
      }),
      /head row 5 .*49152.*outside/,
      "id out of range",
    );
    // a token map row past the embedding: rows = max + 1 disagrees with the embedding's 6145
    throwsWith(
      withInit("m.in_map", (t) => {
        const raw = t.raw.slice();
        new DataView(raw.buffer).setInt32(4 * 7, 6145, true);
        return { ...t, raw };
      }),
      /token embedding .*\[6145, 256\], expected \[6146, 256\]/,
      "map row past the embedding",
    );
    // a token map of the wrong length
    throwsWith(
      withInit("m.in_map", (t) => ({ ...t, dims: [49151], raw: t.raw.slice(0, 49151 * 4) })),
      /token map .*\[49151\].*expected \[49152\]/,
      "short map",
    );
    // a nonzero head bias
    const gemm = graph.nodes.find((n) => n.opType === "Gemm")!;
    throwsWith(
      withInit(gemm.inputs[2], (t) => {
        const raw = t.raw.slice();
        new DataView(raw.buffer).setFloat32(0, 0.5, true);
        return { ...t, raw };
      }),
      /nonzero bias/,
      "head bias",
    );
    // the ConstantOfShape without its value attribute fills with the operator's default, 0
    const g = editable(graph);
    const cos = g.nodes.find((n) => n.opType === "ConstantOfShape")!;
    delete cos.tensorAttributes;
    assert.equal((graphWeights(g, config) as LlamaWeights).vocabSubset!.fill, 0);
  },
});
