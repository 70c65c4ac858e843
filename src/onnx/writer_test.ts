// The streaming writer (writer.ts) against npm onnx-proto (protobufjs, generated from onnx.proto):
// for a graph exercising every field the writer emits (negative ints, float / floats / string /
// empty ints attributes, shapeless and scalar values, symbolic dims, non-default domains, UTF-8
// names, an empty initializer) and for every graph the converter builds (the tiny Llama in each
// precision and form, the feature drafter's fuse / model / quantized graphs), the file writeModel
// writes is byte for byte the file the former writer wrote (onnx-proto for the graph, each
// initializer framed by hand after it, as below). A power check: a one-attribute difference shows.
import assert from "node:assert/strict";
import onnxProto from "npm:onnx-proto@8.0.1";
import { buildLlamaGraph, type LlamaGraphOptions } from "../convert/llama_onnx.ts";
import { buildEagleGraphs, type EagleConfig } from "../convert/eagle_onnx.ts";
import { parseGguf } from "../convert/gguf.ts";
import { parseSafetensors, writeSafetensors } from "../convert/safetensors.ts";
import { GgmlType } from "../convert/ggml_types.ts";
import { gaussian, randomEagleDrafter, tinyLlamaGguf } from "../convert/_testing.ts";
import { DataType } from "./data_types.ts";
import { readOnnxGraph } from "./graph.ts";
import { GraphBuilder, type ValueInfo, writeModel } from "./writer.ts";

// deno-lint-ignore no-explicit-any
const { onnx } = onnxProto as any;

function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return out;
}

function valueInfo(v: ValueInfo): Record<string, unknown> {
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

/** The former writeModel (onnx-proto for the graph and the tensor headers), into memory. */
function referenceModel(
  graph: GraphBuilder,
  opsets: Record<string, number>,
  graphName = "main_graph",
): Uint8Array {
  const head = onnx.ModelProto.encode({
    irVersion: 8,
    producerName: "spectr-convert",
    producerVersion: "0.1.0",
    opsetImport: Object.entries(opsets).map(([domain, version]) => ({ domain, version })),
  }).finish() as Uint8Array;
  const core = onnx.GraphProto.encode({
    name: graphName,
    node: graph.nodes,
    input: graph.inputs.map(valueInfo),
    output: graph.outputs.map(valueInfo),
  }).finish() as Uint8Array;
  const frames = graph.initializers.map((init) => {
    const header = onnx.TensorProto.encode({ name: init.name, dims: init.dims, dataType: init.dataType })
      .finish() as Uint8Array;
    const raw = [0x4a, ...varint(init.byteLength)];
    const tensorLength = header.length + raw.length + init.byteLength;
    return [0x2a, ...varint(tensorLength), ...header, ...raw, ...init.produce()];
  });
  const graphLength = core.length + frames.reduce((a, f) => a + f.length, 0);
  return new Uint8Array([...head, 0x3a, ...varint(graphLength), ...core, ...frames.flat()]);
}

async function written(
  graph: GraphBuilder,
  opsets: Record<string, number>,
  graphName?: string,
): Promise<Uint8Array> {
  const path = await Deno.makeTempFile({ dir: "/tmp", prefix: "spectr-writer-", suffix: ".onnx" });
  try {
    const size = await writeModel(path, graph, { opsets, graphName });
    const bytes = await Deno.readFile(path);
    assert.equal(size, bytes.length, "writeModel returns the file size");
    return bytes;
  } finally {
    await Deno.remove(path);
  }
}

async function assertSameBytes(
  what: string,
  graph: GraphBuilder,
  opsets: Record<string, number>,
): Promise<void> {
  const ours = await written(graph, opsets);
  const theirs = referenceModel(graph, opsets);
  assert.equal(ours.length, theirs.length, `${what}: file size`);
  const at = ours.findIndex((b, i) => b !== theirs[i]);
  assert.equal(at, -1, `${what}: first differing byte at ${at}`);
  readOnnxGraph(ours); // and it reads back
}

function edgeCaseGraph(): GraphBuilder {
  const g = new GraphBuilder();
  g.input({ name: "x", dataType: DataType.FLOAT, dims: ["batch", 4, "größe"] });
  g.input({ name: "mask", dataType: DataType.INT64, dims: null });
  g.input({ name: "scalar", dataType: DataType.FLOAT16, dims: [] });
  const [a] = g.node("Transpose", ["x"], { perm: [0, 2, 1] });
  const [b] = g.node("ReduceSum", [a], { axes: [-1, -2], keepdims: 0, noop_with_empty_axes: -7 });
  const [c] = g.node("LayerNormalization", [b, "w", ""], { epsilon: { float: 1e-5 }, axis: -1 });
  const [d] = g.node(
    "Custom",
    [c],
    {
      mode: "tanh",
      empty: [],
      scales: { floats: [0.5, -2, 1e-30] },
      big: 2 ** 40,
      neg: -(2 ** 40),
      zero: 0,
      fz: { float: 0 },
      text: "",
    },
    2,
    "com.microsoft",
  );
  g.node("Cast", [d], { to: DataType.BOOL }, ["y"]);
  g.output({ name: "y", dataType: DataType.BOOL, dims: [0, "n"] });
  g.floats("w", [4], new Float32Array([1, 2, 3, 4]));
  g.ints("shape", [-1, 0, 2 ** 40]);
  g.ints("one", [5], []);
  g.initializer({
    name: "empty",
    dataType: DataType.UINT8,
    dims: [0],
    byteLength: 0,
    produce: () => new Uint8Array(0),
  });
  g.initializer({
    name: "名前",
    dataType: DataType.INT8,
    dims: [3, 1],
    byteLength: 3,
    produce: () => new Uint8Array([1, 255, 7]),
  });
  return g;
}

Deno.test("writeModel: every field the writer emits, byte for byte as onnx-proto", async () => {
  await assertSameBytes("edge cases", edgeCaseGraph(), { "": 17, "com.microsoft": 1 });
  await assertSameBytes("no opsets, empty graph", new GraphBuilder(), {});
});

Deno.test("writeModel: the converter's tiny Llama graphs, byte for byte as onnx-proto", async () => {
  const cases: [string, Record<string, unknown>, LlamaGraphOptions][] = [
    ["fp32", {}, { precision: "fp32" }],
    ["fp32 4d mask, hidden states", {}, { precision: "fp32", attentionMask: "4d", hiddenStates: [0, 1] }],
    ["fp32 any mask, untied head", { outputType: GgmlType.Q8_0 }, {
      precision: "fp32",
      attentionMask: "any",
    }],
    ["q4 split", {}, { precision: "q4" }],
    ["q4 float, nbits head", {}, { precision: "q4", q4_1: "float", lmHead: "nbits" }],
    ["q8 nbits", { matrixType: GgmlType.Q8_0 }, { precision: "q8" }],
    ["q8 integer, fp32 head", { matrixType: GgmlType.Q8_0 }, {
      precision: "q8",
      q8Form: "integer",
      lmHead: "fp32",
    }],
    ["q8 mixed types", { mixedType: GgmlType.Q8_0 }, { precision: "q8", hiddenStates: [1] }],
  ];
  for (const [what, tiny, options] of cases) {
    const bytes = tinyLlamaGguf(tiny);
    const { graph, opsets } = buildLlamaGraph(parseGguf(bytes), bytes, options);
    await assertSameBytes(what, graph, opsets);
  }
});

Deno.test("writeModel: the feature drafter's graphs, byte for byte as onnx-proto", async () => {
  const c: EagleConfig = {
    model_type: "spectr_eagle",
    target_hidden_layers: [0, 1],
    target_hidden_size: 16,
    hidden_size: 16,
    intermediate_size: 32,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    head_dim: 8,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    vocab_size: 64,
    draft_vocab_size: 16,
    max_position_embeddings: 64,
    target: "tiny-target",
  };
  const weights = parseSafetensors(writeSafetensors(randomEagleDrafter(c, 5))).tensors;
  const r = gaussian(6);
  const graphs = buildEagleGraphs(c, weights, {
    data: Float32Array.from({ length: c.vocab_size * c.hidden_size }, () => r()),
  });
  await assertSameBytes("fuse", graphs.fuse, graphs.opsets);
  await assertSameBytes("model", graphs.model, graphs.opsets);
  await assertSameBytes("quantized", graphs.quantized, graphs.quantizedOpsets);
});

Deno.test("writeModel: power check: a one-attribute difference is a byte difference", async () => {
  const g = edgeCaseGraph();
  const before = referenceModel(g, { "": 17 });
  const node = g.nodes[0] as { attribute: { ints: number[] }[] };
  node.attribute[0].ints = [0, 2, 2];
  const after = await written(g, { "": 17 });
  assert.equal(after.length, before.length);
  assert.notDeepEqual(after, before);
  assert.notDeepEqual(await written(g, { "": 17 }, "other"), referenceModel(g, { "": 17 }));
});
