// The data type table (data_types.ts) against onnx.proto as npm onnx-proto (protobufjs, generated
// from onnx v1.10.2's onnx.proto) encodes it: every name has onnx.proto's code and back, every size
// is its typed array's element size, every typed field is the one onnx.proto's comments name; and
// every type code a reader or writer of this package meets is in the table: the codes the converter
// writes (initializers, inputs, outputs, Cast targets of the tiny Llama in each precision and of the
// feature drafter's graphs), the codes the graph reader decodes from int32_data, and the ones the
// kernel weight readers test for. Power check: the checker reports a table with a wrong code, a wrong
// size, a wrong field, a duplicate or a missing row.
import assert from "node:assert/strict";
import onnxProto from "npm:onnx-proto@8.0.1";
import { buildLlamaGraph, type LlamaGraphOptions } from "../convert/llama_onnx.ts";
import { buildEagleGraphs, type EagleConfig } from "../convert/eagle_onnx.ts";
import { parseGguf } from "../convert/gguf.ts";
import { parseSafetensors, writeSafetensors } from "../convert/safetensors.ts";
import { GgmlType } from "../convert/ggml_types.ts";
import { gaussian, randomEagleDrafter, tinyLlamaGguf } from "../convert/_testing.ts";
import {
  DATA_TYPES,
  DataType,
  type DataTypeInfo,
  dataTypeInfo,
  dataTypeName,
  dataTypeSize,
  type TensorDataField,
} from "./data_types.ts";
import { readOnnxGraph } from "./graph.ts";
import type { GraphBuilder } from "./writer.ts";

// deno-lint-ignore no-explicit-any
const { onnx } = onnxProto as any;
const PROTO: Record<string, number> = onnx.TensorProto.DataType;

/** onnx.proto's comments on TensorProto's typed fields: which types each holds. */
const FIELD_OF: Record<string, TensorDataField> = {
  FLOAT: "float_data",
  COMPLEX64: "float_data",
  INT32: "int32_data",
  INT16: "int32_data",
  INT8: "int32_data",
  UINT16: "int32_data",
  UINT8: "int32_data",
  BOOL: "int32_data",
  FLOAT16: "int32_data",
  BFLOAT16: "int32_data",
  STRING: "string_data",
  INT64: "int64_data",
  DOUBLE: "double_data",
  COMPLEX128: "double_data",
  UINT32: "uint64_data",
  UINT64: "uint64_data",
};

/** Bytes per element by onnx.proto's type names (the C type each names). */
const BYTES_OF: Record<string, number> = {
  FLOAT: 4,
  UINT8: 1,
  INT8: 1,
  UINT16: 2,
  INT16: 2,
  INT32: 4,
  INT64: 8,
  STRING: 0,
  BOOL: 1,
  FLOAT16: 2,
  DOUBLE: 8,
  UINT32: 4,
  UINT64: 8,
  BFLOAT16: 2,
};

/** What is wrong with a table of rows (empty: nothing). */
function problems(rows: readonly DataTypeInfo[], names: Record<string, number>): string[] {
  const out: string[] = [];
  const seen = new Map<number, string>();
  for (const r of rows) {
    if (PROTO[r.name] !== r.code) out.push(`${r.name}: code ${r.code}, onnx.proto says ${PROTO[r.name]}`);
    if (names[r.name] !== r.code) out.push(`${r.name}: DataType says ${names[r.name]}, the row ${r.code}`);
    if (seen.has(r.code)) out.push(`code ${r.code} is both ${seen.get(r.code)} and ${r.name}`);
    seen.set(r.code, r.name);
    if (BYTES_OF[r.name] !== r.bytes) out.push(`${r.name}: ${r.bytes} bytes, expected ${BYTES_OF[r.name]}`);
    if (r.array && r.array.BYTES_PER_ELEMENT !== r.bytes) {
      out.push(
        `${r.name}: ${r.array.name} has ${r.array.BYTES_PER_ELEMENT}-byte elements, the row ${r.bytes}`,
      );
    }
    if ((r.array === undefined) !== (r.name === "STRING")) {
      out.push(`${r.name}: typed array ${r.array?.name}`);
    }
    if (FIELD_OF[r.name] !== r.field) {
      out.push(`${r.name}: field ${r.field}, onnx.proto says ${FIELD_OF[r.name]}`);
    }
  }
  for (const [name, code] of Object.entries(names)) {
    if (!seen.has(code)) out.push(`${name} (${code}) has no row`);
  }
  return out;
}

Deno.test("data types: every row agrees with onnx.proto, both ways; sizes; typed fields", () => {
  const rows = [...DATA_TYPES.values()];
  assert.deepEqual(problems(rows, DataType), []);
  assert.equal(rows.length, Object.keys(DataType).length);
  for (const [name, code] of Object.entries(DataType)) {
    assert.equal(dataTypeInfo(code)?.name, name);
    assert.equal(dataTypeName(code), name);
    assert.equal(dataTypeSize(code), BYTES_OF[name]);
  }
  // onnx.proto's types 1 … 16 the table leaves out: the complex ones
  const absent = Object.entries(PROTO).filter(([, c]) => c >= 1 && c <= 16 && !DATA_TYPES.has(c)).map(([n]) =>
    n
  );
  assert.deepEqual(absent.sort(), ["COMPLEX128", "COMPLEX64"]);
  assert.equal(dataTypeInfo(0), undefined);
  assert.equal(dataTypeName(14), "type 14");
  assert.equal(dataTypeSize(99), undefined);
});

Deno.test("data types: power check: a wrong code, size, field, a duplicate or a missing row is reported", () => {
  const rows = [...DATA_TYPES.values()];
  const edit = (name: string, change: Partial<DataTypeInfo>) =>
    rows.map((r) => (r.name === name ? { ...r, ...change } : r));
  const float = rows.find((r) => r.name === "FLOAT")!;
  const cases: [string, DataTypeInfo[], Record<string, number>, RegExp][] = [
    ["wrong code", edit("FLOAT16", { code: 16 }), DataType, /FLOAT16: code 16/],
    ["wrong size", edit("INT64", { bytes: 4 }), DataType, /INT64: 4 bytes/],
    ["wrong array", edit("UINT16", { array: Uint8Array }), DataType, /UINT16: Uint8Array has 1-byte/],
    ["wrong field", edit("UINT32", { field: "int32_data" }), DataType, /UINT32: field int32_data/],
    ["duplicate", [...rows, { ...float, name: "DOUBLE" }], DataType, /code 1 is both FLOAT and DOUBLE/],
    ["missing row", rows.filter((r) => r.name !== "BOOL"), DataType, /BOOL \(9\) has no row/],
    ["wrong name table", rows, { ...DataType, INT8: 5 }, /INT8: DataType says 5/],
  ];
  for (const [what, table, names, expected] of cases) {
    assert.match(problems(table, names).join("\n"), expected, what);
  }
});

/** Every type code a built graph names: initializers, inputs, outputs, Cast targets. */
function codesOf(g: GraphBuilder): Set<number> {
  const codes = new Set<number>();
  for (const i of g.initializers) codes.add(i.dataType);
  for (const v of [...g.inputs, ...g.outputs]) codes.add(v.dataType);
  for (const n of g.nodes as { opType: string; attribute: { name: string; i?: number }[] }[]) {
    if (n.opType !== "Cast") continue;
    const to = n.attribute.find((a) => a.name === "to")?.i;
    assert.ok(to !== undefined, "a Cast names its target type");
    codes.add(to);
  }
  return codes;
}

Deno.test("data types: every code the converter writes and the readers decode is in the table", () => {
  const written = new Set<number>();
  const options: [Record<string, unknown>, LlamaGraphOptions][] = [
    [{}, { precision: "fp32", hiddenStates: [0] }],
    [{}, { precision: "q4" }],
    [{ matrixType: GgmlType.Q8_0 }, { precision: "q8" }],
    [{ matrixType: GgmlType.Q8_0 }, { precision: "q8", q8Form: "integer" }],
  ];
  for (const [tiny, o] of options) {
    const bytes = tinyLlamaGguf(tiny);
    for (const c of codesOf(buildLlamaGraph(parseGguf(bytes), bytes, o).graph)) written.add(c);
  }
  const c: EagleConfig = {
    model_type: "spectr_eagle",
    target_hidden_layers: [0],
    target_hidden_size: 16,
    hidden_size: 16,
    intermediate_size: 16,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    head_dim: 8,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    vocab_size: 32,
    draft_vocab_size: 8,
    target: "t",
  };
  const r = gaussian(3);
  const eagle = buildEagleGraphs(c, parseSafetensors(writeSafetensors(randomEagleDrafter(c, 2))).tensors, {
    data: Float32Array.from({ length: 32 * 16 }, () => r()),
  });
  for (const g of [eagle.fuse, eagle.model, eagle.quantized]) for (const x of codesOf(g)) written.add(x);
  for (const code of written) assert.ok(DATA_TYPES.has(code), `the converter writes type ${code}`);
  // at least these: weights, ids, 8-bit codes, the mask's bool
  for (const t of [DataType.FLOAT, DataType.INT64, DataType.UINT8, DataType.BOOL]) assert.ok(written.has(t));

  // the graph reader's int32_data types (each one element per int32) and the kernel readers' tests
  const read = [
    DataType.UINT8,
    DataType.INT8,
    DataType.UINT16,
    DataType.INT16,
    DataType.INT32,
    DataType.BOOL,
    DataType.FLOAT16,
    DataType.BFLOAT16,
    DataType.FLOAT,
    DataType.INT64,
  ];
  for (const code of read) assert.ok(DATA_TYPES.has(code));
  const int32Data = [...DATA_TYPES.values()].filter((t) => t.field === "int32_data").map((t) => t.code);
  assert.deepEqual(int32Data, [2, 3, 4, 5, 6, 9, 10, 16], "the former reader's int32_data types, no more");
});

Deno.test("data types: the graph reader decodes int32_data by the table's sizes", () => {
  // one tensor per int32_data type, values [1, -1]: each element keeps its low bytes
  const initializer = [...DATA_TYPES.values()].filter((t) => t.field === "int32_data").map((t) => ({
    name: t.name,
    dims: [2],
    dataType: t.code,
    int32Data: [1, -1],
  }));
  const bytes = new Uint8Array(onnx.ModelProto.encode({ irVersion: 8, graph: { initializer } }).finish());
  const graph = readOnnxGraph(bytes);
  for (const t of DATA_TYPES.values()) {
    if (t.field !== "int32_data") continue;
    const raw = graph.initializers.get(t.name)!.raw;
    assert.equal(raw.length, 2 * t.bytes, t.name);
    const values = new t.array!(raw.slice().buffer);
    const expected = t.name.startsWith("U") || t.name === "BOOL" || t.name.includes("FLOAT")
      ? [1, 2 ** (8 * t.bytes) - 1]
      : [1, -1];
    assert.deepEqual(Array.from(values as ArrayLike<number>), expected, t.name);
  }
});
