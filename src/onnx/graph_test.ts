import assert from "node:assert/strict";
import onnxProto from "npm:onnx-proto@8.0.1";
import { InvalidModelError } from "../model/errors.ts";
import { readOnnxGraph } from "./graph.ts";
import { haveModel, modelPath } from "../model/_testing.ts";

// deno-lint-ignore no-explicit-any
const { onnx } = onnxProto as any;
const A = onnx.AttributeProto.AttributeType;

/** A ModelProto encoded by onnx-proto (protobufjs), as a plain Uint8Array. */
function model(graph: Record<string, unknown>): Uint8Array {
  return new Uint8Array(onnx.ModelProto.encode({ irVersion: 8, graph }).finish());
}

function f32(x: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(x).buffer);
}

Deno.test("readOnnxGraph: nodes, attributes, inputs and outputs", () => {
  const bytes = model({
    node: [
      {
        opType: "LayerNormalization",
        name: "ln",
        input: ["x", "w", ""],
        output: ["y"],
        attribute: [
          { name: "axis", type: A.INT, i: -1 },
          { name: "epsilon", type: A.FLOAT, f: 1e-5 },
        ],
      },
      {
        opType: "Transpose",
        domain: "com.example",
        input: ["y"],
        output: ["z"],
        attribute: [
          { name: "perm", type: A.INTS, ints: [1, 0, -2] },
          { name: "scales", type: A.FLOATS, floats: [0.5, 2] },
          { name: "mode", type: A.STRING, s: new TextEncoder().encode("tanh") },
          { name: "zero", type: A.INT },
        ],
      },
    ],
    input: [
      {
        name: "x",
        type: { tensorType: { elemType: 1, shape: { dim: [{ dimParam: "batch" }, { dimValue: 4 }, {}] } } },
      },
      { name: "w", type: { tensorType: { elemType: 1 } } },
    ],
    output: [{ name: "z" }],
    initializer: [{ name: "w", dims: [4], dataType: 1, rawData: f32([1, 2, 3, 4]) }],
  });
  const g = readOnnxGraph(bytes);
  assert.equal(g.nodes.length, 2);
  const [ln, tr] = g.nodes;
  assert.deepEqual(ln.inputs, ["x", "w", ""]);
  assert.equal(ln.name, "ln");
  assert.equal(ln.domain, "");
  assert.equal(ln.attributes.axis, -1);
  assert.equal(ln.attributes.epsilon, Math.fround(1e-5));
  assert.equal(tr.domain, "com.example");
  assert.deepEqual(tr.attributes.perm, [1, 0, -2]);
  assert.deepEqual(tr.attributes.scales, [0.5, 2]);
  assert.equal(tr.attributes.mode, "tanh");
  assert.equal(tr.attributes.zero, 0);
  // "w" is an initializer listed among the inputs (IR < 4 style): not a graph input
  assert.deepEqual(g.inputs, [{ name: "x", dataType: 1, dims: ["batch", 4, ""] }]);
  assert.deepEqual(g.outputs, ["z"]);
  const w = g.initializers.get("w")!;
  assert.deepEqual(w.dims, [4]);
  assert.equal(w.dataType, 1);
  assert.equal(w.raw.buffer, bytes.buffer, "raw_data is a view into the file");
  assert.deepEqual(new Float32Array(w.raw.slice().buffer), new Float32Array([1, 2, 3, 4]));
});

Deno.test("readOnnxGraph: typed tensor fields become raw bytes; Constant values", () => {
  const g = readOnnxGraph(model({
    node: [
      {
        opType: "Constant",
        output: ["c_tensor"],
        attribute: [{ name: "value", type: A.TENSOR, t: { dims: [2], dataType: 1, floatData: [0.25, -8] } }],
      },
      { opType: "Constant", output: ["c_float"], attribute: [{ name: "value_float", type: A.FLOAT, f: 3 }] },
      {
        opType: "Constant",
        output: ["c_ints"],
        attribute: [{ name: "value_ints", type: A.INTS, ints: [-1, 5] }],
      },
    ],
    initializer: [
      { name: "f", dims: [2, 2], dataType: 1, floatData: [1, 2, 3, 4.5] },
      { name: "i", dims: [3], dataType: 7, int64Data: [-1, 0, 2 ** 40] },
      { name: "h", dims: [2], dataType: 10, int32Data: [0x3c00, 0xc000] },
      { name: "scalar", dataType: 1, rawData: f32([7]) },
    ],
  }));
  const f = g.initializers.get("f")!;
  assert.deepEqual(f.dims, [2, 2]);
  assert.deepEqual(new Float32Array(f.raw.buffer, f.raw.byteOffset, 4), new Float32Array([1, 2, 3, 4.5]));
  const i = g.initializers.get("i")!;
  assert.deepEqual([...new BigInt64Array(i.raw.slice().buffer)], [-1n, 0n, 2n ** 40n]);
  const h = g.initializers.get("h")!;
  assert.deepEqual([...new Uint16Array(h.raw.slice().buffer)], [0x3c00, 0xc000]);
  assert.deepEqual(g.initializers.get("scalar")!.dims, []);
  const c = g.constants.get("c_tensor")!;
  assert.equal(c.name, "c_tensor");
  assert.deepEqual(new Float32Array(c.raw.slice().buffer), new Float32Array([0.25, -8]));
  assert.deepEqual(g.constants.get("c_float")!.dims, []);
  assert.deepEqual(new Float32Array(g.constants.get("c_float")!.raw.slice().buffer), new Float32Array([3]));
  assert.deepEqual([...new BigInt64Array(g.constants.get("c_ints")!.raw.slice().buffer)], [-1n, 5n]);
});

Deno.test("readOnnxGraph: tensor attributes (ConstantOfShape value) are kept per node", () => {
  const g = readOnnxGraph(model({
    node: [
      {
        opType: "ConstantOfShape",
        input: ["shape"],
        output: ["filled"],
        attribute: [
          { name: "value", type: A.TENSOR, t: { dims: [1], dataType: 1, rawData: f32([-Infinity]) } },
        ],
      },
      { opType: "ConstantOfShape", input: ["shape"], output: ["zeros"] },
      {
        opType: "Constant",
        output: ["c"],
        attribute: [{ name: "value", type: A.TENSOR, t: { dims: [2], dataType: 7, int64Data: [3, -4] } }],
      },
      {
        opType: "Op",
        output: ["e"],
        attribute: [{
          name: "ext",
          type: A.TENSOR,
          t: { dims: [1], dataType: 1, externalData: [{ key: "location", value: "w.bin" }], dataLocation: 1 },
        }, { name: "k", type: A.INT, i: 2 }],
      },
    ],
  }));
  const [filled, zeros, c, e] = g.nodes;
  const value = filled.tensorAttributes!.value;
  assert.deepEqual(value.dims, [1]);
  assert.equal(value.dataType, 1);
  assert.deepEqual(new Float32Array(value.raw.slice().buffer), new Float32Array([-Infinity]));
  assert.deepEqual(filled.attributes, {}, "a tensor attribute is not among the plain attributes");
  assert.equal(zeros.tensorAttributes, undefined, "no tensor attribute: no field");
  assert.deepEqual([...new BigInt64Array(c.tensorAttributes!.value.raw.slice().buffer)], [3n, -4n]);
  assert.deepEqual([...new BigInt64Array(g.constants.get("c")!.raw.slice().buffer)], [3n, -4n]);
  // an external-data tensor attribute is left out (reading the graph does not fail, as before)
  assert.equal(e.tensorAttributes, undefined);
  assert.equal(e.attributes.k, 2);
});

Deno.test("readOnnxGraph: packed dims and unpacked ints (both protobuf forms)", () => {
  // TensorProto { dims: [2, 3] packed, data_type: 1, name: "p", raw_data: 24 bytes }
  const raw = new Uint8Array(24).fill(1);
  const tensor = [0x0a, 0x02, 0x02, 0x03, 0x10, 0x01, 0x42, 0x01, 0x70, 0x4a, 24, ...raw];
  // NodeProto { op_type: "T", attribute { name: "perm", ints: 1, ints: -1 (10-byte varint) } }
  const minusOne = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
  const attr = [0x0a, 0x04, ...new TextEncoder().encode("perm"), 0x40, 0x01, 0x40, ...minusOne];
  const node = [0x22, 0x01, 0x54, 0x2a, attr.length, ...attr];
  const graph = [0x0a, node.length, ...node, 0x2a, tensor.length, ...tensor];
  const g = readOnnxGraph(new Uint8Array([0x3a, graph.length, ...graph]));
  assert.deepEqual(g.initializers.get("p")!.dims, [2, 3]);
  assert.equal(g.initializers.get("p")!.raw.length, 24);
  assert.deepEqual(g.nodes[0].attributes.perm, [1, -1]);
});

Deno.test("readOnnxGraph: external data, a missing graph and garbage throw InvalidModelError", () => {
  const external = model({
    initializer: [{
      name: "big",
      dims: [4],
      dataType: 1,
      externalData: [{ key: "location", value: "w.bin" }],
      dataLocation: 1,
    }],
  });
  assert.throws(
    () => readOnnxGraph(external),
    (e) => e instanceof InvalidModelError && /"big"/.test(e.message) && /external data/.test(e.message),
  );
  const located = model({ initializer: [{ name: "loc", dims: [1], dataType: 1, dataLocation: 1 }] });
  assert.throws(() => readOnnxGraph(located), InvalidModelError);
  assert.throws(
    () => readOnnxGraph(new Uint8Array(onnx.ModelProto.encode({ irVersion: 8 }).finish())),
    (e) => e instanceof InvalidModelError && /no graph/.test(e.message),
  );
  assert.throws(() => readOnnxGraph(new TextEncoder().encode('{"not": "onnx"}')), InvalidModelError);
  assert.throws(() => readOnnxGraph(new Uint8Array([0x3a, 0x7f, 0x01])), InvalidModelError);
});

Deno.test({
  name: "readOnnxGraph: the gpt2 target file",
  ignore: !haveModel("target"),
  fn() {
    const bytes = Deno.readFileSync(`${modelPath("target")}/onnx/model.onnx`);
    const g = readOnnxGraph(bytes);
    const ops = (op: string) => g.nodes.filter((n) => n.opType === op).length;
    // counts from an independent dump of the file
    assert.equal(g.initializers.size, 100);
    assert.equal(g.nodes.length, 767);
    assert.equal(ops("LayerNormalization"), 17);
    assert.equal(ops("MatMul"), 48);
    assert.equal(ops("Gemm"), 1);
    assert.equal(ops("Constant"), 231);
    assert.equal(g.constants.size, 231);
    assert.deepEqual(g.initializers.get("m.wte.weight")!.dims, [8192, 256]);
    assert.deepEqual(g.initializers.get("onnx::MatMul_968")!.dims, [1024, 256]);
    for (const t of g.initializers.values()) assert.equal(t.raw.buffer, bytes.buffer);
    assert.deepEqual(g.inputs.slice(0, 3).map((i) => i.name), [
      "input_ids",
      "attention_mask",
      "position_ids",
    ]);
    assert.deepEqual(g.inputs[0].dims, ["batch_size", "sequence_length"]);
    assert.equal(g.inputs[0].dataType, 7);
    assert.equal(g.outputs.length, 1 + 2 * 8);
    assert.equal(g.outputs[0], "logits");
    const gemm = g.nodes.find((n) => n.opType === "Gemm")!;
    assert.deepEqual(gemm.inputs, ["/m/Reshape_output_0", "m.wte.weight"]);
    assert.equal(gemm.attributes.transB, 1);
  },
});

Deno.test({
  name: "readOnnxGraph: the llama draft file keeps Constant tables",
  ignore: !haveModel("draft"),
  fn() {
    const g = readOnnxGraph(Deno.readFileSync(`${modelPath("draft")}/onnx/model.onnx`));
    assert.equal(g.nodes.length, 171);
    const invFreq = g.constants.get("/m/Constant_15_output_0")!;
    assert.deepEqual(invFreq.dims, [6]);
    assert.equal(invFreq.dataType, 1);
    const first = new DataView(invFreq.raw.buffer, invFreq.raw.byteOffset).getFloat32(0, true);
    assert.equal(first, 1);
  },
});
