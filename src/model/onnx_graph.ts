/**
 * Reads the structure and weights of an ONNX model without onnxruntime: its nodes (in file order,
 * which ONNX requires to be topological), its graph inputs and outputs, and its initializers as
 * views into the file's bytes (no copy). Enough for a backend that runs the math itself to find
 * which initializer is which weight (see ./transformer_weights.ts).
 *
 * Only the main graph is read: subgraphs (If / Loop bodies), sparse initializers, value_info and
 * metadata are skipped.
 *
 * @module
 */

import { InvalidModelError } from "./errors.ts";
import { type Field, fields, I32, LEN, readInt64, readVarint, VARINT } from "./_protobuf.ts";

/** ONNX `TensorProto.DataType` numbers used by this layer. */
export const OnnxDataType = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  BFLOAT16: 16,
} as const;

/** A tensor stored in the graph: an initializer, or the value of a `Constant` node. */
export interface OnnxInitializer {
  /** The tensor's name (for a `Constant` node: its output's name). */
  name: string;
  /** Shape; `[]` for a scalar. */
  dims: number[];
  /** `TensorProto.DataType` ({@linkcode OnnxDataType}). */
  dataType: number;
  /**
   * Raw little-endian bytes: a view into the model's bytes (no copy) when the file stores
   * `raw_data`; a copy when it stores typed fields (`float_data`, `int64_data`, ...).
   */
  raw: Uint8Array;
}

/** One node of the graph. */
export interface OnnxNode {
  /** Operator, e.g. "MatMul". */
  opType: string;
  /** Operator domain: "" for the default ONNX domain, e.g. "com.microsoft". */
  domain: string;
  /** Node name (may be empty). */
  name: string;
  /** Input value names in order; "" marks an omitted optional input. */
  inputs: string[];
  /** Output value names in order. */
  outputs: string[];
  /**
   * Attributes: INT / FLOAT as a number, INTS / FLOATS as a number[], STRING as a string. Tensor
   * attributes are in {@linkcode OnnxNode.tensorAttributes}; graph attributes are left out.
   */
  attributes: Record<string, number | number[] | string>;
  /**
   * TENSOR attributes by name (e.g. ConstantOfShape's `value`), present only when the node has one
   * this reader can read (inline data). A `Constant` node's is also in {@linkcode OnnxGraph.constants}.
   */
  tensorAttributes?: Record<string, OnnxInitializer>;
}

/** A graph input: name, element type and dims (numbers, or symbolic names; "" when unknown). */
export interface OnnxGraphInput {
  /** Input name. */
  name: string;
  /** Element type ({@linkcode OnnxDataType}); 0 when not declared. */
  dataType: number;
  /** Dims; empty when no shape is declared. */
  dims: (number | string)[];
}

/** The main graph of an ONNX model. */
export interface OnnxGraph {
  /** Initializers by name. */
  initializers: Map<string, OnnxInitializer>;
  /**
   * Values of `Constant` nodes (`value`, `value_float(s)`, `value_int(s)` attributes) by output
   * name: exported graphs keep some weights-like tables there (RoPE frequencies, rotation matrices).
   */
  constants: Map<string, OnnxInitializer>;
  /** Nodes in file order (topological). */
  nodes: OnnxNode[];
  /** Graph inputs that are not initializers. */
  inputs: OnnxGraphInput[];
  /** Graph output names. */
  outputs: string[];
}

// Field numbers (onnx.proto3).
const MODEL_GRAPH = 7;
const GRAPH_NODE = 1, GRAPH_INITIALIZER = 5, GRAPH_INPUT = 11, GRAPH_OUTPUT = 12;
const NODE_INPUT = 1, NODE_OUTPUT = 2, NODE_NAME = 3, NODE_OP_TYPE = 4, NODE_ATTRIBUTE = 5, NODE_DOMAIN = 7;
const ATTR_NAME = 1, ATTR_F = 2, ATTR_I = 3, ATTR_S = 4, ATTR_T = 5, ATTR_FLOATS = 7, ATTR_INTS = 8;
const TENSOR_DIMS = 1, TENSOR_DATA_TYPE = 2, TENSOR_FLOAT_DATA = 4, TENSOR_INT32_DATA = 5;
const TENSOR_INT64_DATA = 7, TENSOR_NAME = 8, TENSOR_RAW_DATA = 9, TENSOR_DOUBLE_DATA = 10;
const TENSOR_UINT64_DATA = 11, TENSOR_EXTERNAL_DATA = 13, TENSOR_DATA_LOCATION = 14;
const VALUE_NAME = 1, VALUE_TYPE = 2, TYPE_TENSOR = 1, TENSOR_TYPE_ELEM = 1, TENSOR_TYPE_SHAPE = 2;
const SHAPE_DIM = 1, DIM_VALUE = 1, DIM_PARAM = 2;

const decoder = new TextDecoder();

/** Bytes per element of the types stored in `int32_data` (fp16 / bf16 as their uint16 bits). */
const INT32_DATA_SIZE: Record<number, number> = { 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 9: 1, 10: 2, 16: 2 };

function text(bytes: Uint8Array, f: Field): string {
  return decoder.decode(bytes.subarray(f.payloadStart, f.end));
}

function varintField(bytes: Uint8Array, f: Field): number {
  return readVarint(bytes, f.payloadStart)[0];
}

/** A repeated int64 field: packed (one LEN field) or not (one VARINT per entry). */
function int64s(bytes: Uint8Array, list: Field[]): number[] {
  const out: number[] = [];
  for (const f of list) {
    if (f.wire === VARINT) out.push(readInt64(bytes, f.payloadStart)[0]);
    else if (f.wire === LEN) {
      for (let at = f.payloadStart; at < f.end;) {
        const [v, next] = readInt64(bytes, at);
        out.push(v);
        at = next;
      }
    }
  }
  return out;
}

/** A repeated float field: packed (LEN) or not (one I32 per entry). */
function float32s(bytes: Uint8Array, list: Field[]): number[] {
  const out: number[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const f of list) {
    const n = f.wire === LEN ? (f.end - f.payloadStart) / 4 : f.wire === I32 ? 1 : 0;
    for (let i = 0; i < n; i++) out.push(view.getFloat32(f.payloadStart + 4 * i, true));
  }
  return out;
}

/** A repeated double field (packed or not). */
function float64s(bytes: Uint8Array, list: Field[]): number[] {
  const out: number[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const f of list) {
    const n = f.wire === LEN ? (f.end - f.payloadStart) / 8 : f.wire === 1 ? 1 : 0;
    for (let i = 0; i < n; i++) out.push(view.getFloat64(f.payloadStart + 8 * i, true));
  }
  return out;
}

function readTensor(bytes: Uint8Array, start: number, end: number, fallbackName = ""): OnnxInitializer {
  const fs = fields(bytes, start, end);
  const of = (n: number) => fs.filter((f) => f.number === n);
  const nameField = of(TENSOR_NAME)[0];
  const name = nameField ? text(bytes, nameField) : fallbackName;
  const dims = int64s(bytes, of(TENSOR_DIMS));
  const typeField = of(TENSOR_DATA_TYPE)[0];
  const dataType = typeField ? varintField(bytes, typeField) : 0;
  const location = of(TENSOR_DATA_LOCATION)[0];
  if (of(TENSOR_EXTERNAL_DATA).length > 0 || (location && varintField(bytes, location) === 1)) {
    throw new InvalidModelError(
      `Cannot read the ONNX graph: initializer "${name}" is stored as external data, which this reader does not support (pass a model with its weights inline)`,
    );
  }
  const rawField = of(TENSOR_RAW_DATA)[0];
  let raw: Uint8Array;
  if (rawField) raw = bytes.subarray(rawField.payloadStart, rawField.end);
  else if (of(TENSOR_FLOAT_DATA).length > 0) {
    raw = new Uint8Array(Float32Array.from(float32s(bytes, of(TENSOR_FLOAT_DATA))).buffer);
  } else if (of(TENSOR_INT64_DATA).length > 0) {
    raw = new Uint8Array(BigInt64Array.from(int64s(bytes, of(TENSOR_INT64_DATA)), BigInt).buffer);
  } else if (of(TENSOR_DOUBLE_DATA).length > 0) {
    raw = new Uint8Array(Float64Array.from(float64s(bytes, of(TENSOR_DOUBLE_DATA))).buffer);
  } else if (of(TENSOR_UINT64_DATA).length > 0) {
    raw = new Uint8Array(BigUint64Array.from(int64s(bytes, of(TENSOR_UINT64_DATA)), BigInt).buffer);
  } else if (of(TENSOR_INT32_DATA).length > 0) {
    const values = int64s(bytes, of(TENSOR_INT32_DATA));
    const size = INT32_DATA_SIZE[dataType];
    if (size === undefined) {
      throw new InvalidModelError(
        `Cannot read the ONNX graph: tensor "${name}" stores data type ${dataType} in int32_data, which this reader does not support`,
      );
    }
    raw = new Uint8Array(values.length * size);
    const view = new DataView(raw.buffer);
    for (let i = 0; i < values.length; i++) {
      if (size === 1) view.setUint8(i, values[i] & 0xff);
      else if (size === 2) view.setUint16(2 * i, values[i] & 0xffff, true);
      else view.setInt32(4 * i, values[i], true);
    }
  } else raw = new Uint8Array(0);
  return { name, dims, dataType, raw };
}

/** A `Constant` node's value, from whichever `value*` attribute it has (undefined: none read). */
function constantValue(bytes: Uint8Array, attrs: Field[][], output: string): OnnxInitializer | undefined {
  for (const fs of attrs) {
    const nameField = fs.find((f) => f.number === ATTR_NAME);
    const name = nameField ? text(bytes, nameField) : "";
    const one = (n: number) => fs.filter((f) => f.number === n);
    if (name === "value") {
      const t = one(ATTR_T)[0];
      if (t) return { ...readTensor(bytes, t.payloadStart, t.end, output), name: output };
    } else if (name === "value_float" || name === "value_floats") {
      const values = float32s(bytes, one(ATTR_F).concat(one(ATTR_FLOATS)));
      const dims = name === "value_float" ? [] : [values.length];
      return { name: output, dims, dataType: 1, raw: new Uint8Array(Float32Array.from(values).buffer) };
    } else if (name === "value_int" || name === "value_ints") {
      const values = int64s(bytes, one(ATTR_I).concat(one(ATTR_INTS)));
      const dims = name === "value_int" ? [] : [values.length];
      const raw = new Uint8Array(BigInt64Array.from(values, BigInt).buffer);
      return { name: output, dims, dataType: 7, raw };
    }
  }
  return undefined;
}

function readNode(bytes: Uint8Array, start: number, end: number, constants: Map<string, OnnxInitializer>) {
  const fs = fields(bytes, start, end);
  const strings = (n: number) =>
    fs.filter((f) => f.number === n && f.wire === LEN).map((f) => text(bytes, f));
  const node: OnnxNode = {
    opType: strings(NODE_OP_TYPE)[0] ?? "",
    domain: strings(NODE_DOMAIN)[0] ?? "",
    name: strings(NODE_NAME)[0] ?? "",
    inputs: strings(NODE_INPUT),
    outputs: strings(NODE_OUTPUT),
    attributes: {},
  };
  const attrs = fs.filter((f) => f.number === NODE_ATTRIBUTE && f.wire === LEN)
    .map((f) => fields(bytes, f.payloadStart, f.end));
  for (const a of attrs) {
    const nameField = a.find((f) => f.number === ATTR_NAME);
    if (!nameField) continue;
    const name = text(bytes, nameField);
    const one = (n: number) => a.filter((f) => f.number === n);
    // The `type` field says which field is meant; exporters omit the zero-valued ones, so read
    // whichever is present, in the order a scalar beats a list.
    if (one(ATTR_F).length > 0) node.attributes[name] = float32s(bytes, one(ATTR_F))[0];
    else if (one(ATTR_I).length > 0) node.attributes[name] = int64s(bytes, one(ATTR_I))[0];
    else if (one(ATTR_S).length > 0) node.attributes[name] = text(bytes, one(ATTR_S)[0]);
    else if (one(ATTR_INTS).length > 0) node.attributes[name] = int64s(bytes, one(ATTR_INTS));
    else if (one(ATTR_FLOATS).length > 0) node.attributes[name] = float32s(bytes, one(ATTR_FLOATS));
    else if (one(ATTR_T).length > 0) {
      const t = one(ATTR_T)[0];
      try {
        const value = readTensor(bytes, t.payloadStart, t.end);
        node.tensorAttributes = { ...node.tensorAttributes, [name]: value };
      } catch (error) {
        // external data or an unreadable type: left out, as before tensor attributes were read
        if (!(error instanceof InvalidModelError)) throw error;
      }
    } else {
      // An INT / FLOAT attribute equal to 0 is written as its type alone.
      const type = a.find((f) => f.number === 20);
      const t = type ? varintField(bytes, type) : 0;
      if (t === 1 || t === 2) node.attributes[name] = 0;
      else if (t === 6 || t === 7) node.attributes[name] = [];
    }
  }
  if (node.opType === "Constant" && node.domain === "" && node.outputs.length === 1) {
    const value = constantValue(bytes, attrs, node.outputs[0]);
    if (value) constants.set(node.outputs[0], value);
  }
  return node;
}

function readValueInfo(bytes: Uint8Array, start: number, end: number): OnnxGraphInput {
  const fs = fields(bytes, start, end);
  const nameField = fs.find((f) => f.number === VALUE_NAME);
  const info: OnnxGraphInput = { name: nameField ? text(bytes, nameField) : "", dataType: 0, dims: [] };
  const type = fs.find((f) => f.number === VALUE_TYPE && f.wire === LEN);
  const tensorType = type &&
    fields(bytes, type.payloadStart, type.end).find((f) => f.number === TYPE_TENSOR && f.wire === LEN);
  if (!tensorType) return info;
  for (const f of fields(bytes, tensorType.payloadStart, tensorType.end)) {
    if (f.number === TENSOR_TYPE_ELEM && f.wire === VARINT) info.dataType = varintField(bytes, f);
    if (f.number !== TENSOR_TYPE_SHAPE || f.wire !== LEN) continue;
    for (const d of fields(bytes, f.payloadStart, f.end)) {
      if (d.number !== SHAPE_DIM || d.wire !== LEN) continue;
      const dim = fields(bytes, d.payloadStart, d.end);
      const value = dim.find((x) => x.number === DIM_VALUE && x.wire === VARINT);
      const param = dim.find((x) => x.number === DIM_PARAM && x.wire === LEN);
      info.dims.push(value ? readInt64(bytes, value.payloadStart)[0] : param ? text(bytes, param) : "");
    }
  }
  return info;
}

/**
 * Reads the main graph of an ONNX `ModelProto`: initializers (views into `bytes`), `Constant`
 * values, nodes, inputs and outputs.
 *
 * @param bytes The .onnx file.
 * @returns The graph.
 * @throws {InvalidModelError} `bytes` is not a protobuf message with a graph, or an initializer
 *   is stored as external data.
 * @example A one-node graph
 * ```ts
 * import { readOnnxGraph } from "./onnx_graph.ts";
 * import assert from "node:assert/strict";
 * // ModelProto { graph { node { input: "x" output: "y" op_type: "Neg" } } }
 * const node = [0x0a, 0x01, 0x78, 0x12, 0x01, 0x79, 0x22, 0x03, 0x4e, 0x65, 0x67];
 * const model = new Uint8Array([0x3a, 13, 0x0a, 11, ...node]);
 * const graph = readOnnxGraph(model);
 * assert.equal(graph.nodes[0].opType, "Neg");
 * assert.deepEqual(graph.nodes[0].inputs, ["x"]);
 * ```
 */
export function readOnnxGraph(bytes: Uint8Array): OnnxGraph {
  try {
    return read(bytes);
  } catch (error) {
    if (error instanceof RangeError) {
      throw new InvalidModelError(
        `Cannot read the ONNX graph: the file is not a valid model (${error.message})`,
        {
          cause: error,
        },
      );
    }
    throw error;
  }
}

function read(bytes: Uint8Array): OnnxGraph {
  const graphField = fields(bytes, 0, bytes.length).find((f) => f.number === MODEL_GRAPH && f.wire === LEN);
  if (!graphField) {
    throw new InvalidModelError(
      `Cannot read the ONNX graph: the model has no graph (field 7), got ${bytes.length} bytes`,
    );
  }
  const graph: OnnxGraph = {
    initializers: new Map(),
    constants: new Map(),
    nodes: [],
    inputs: [],
    outputs: [],
  };
  const declared: OnnxGraphInput[] = [];
  for (const f of fields(bytes, graphField.payloadStart, graphField.end)) {
    if (f.wire !== LEN) continue;
    if (f.number === GRAPH_NODE) graph.nodes.push(readNode(bytes, f.payloadStart, f.end, graph.constants));
    else if (f.number === GRAPH_INITIALIZER) {
      const t = readTensor(bytes, f.payloadStart, f.end);
      graph.initializers.set(t.name, t);
    } else if (f.number === GRAPH_INPUT) declared.push(readValueInfo(bytes, f.payloadStart, f.end));
    else if (f.number === GRAPH_OUTPUT) graph.outputs.push(readValueInfo(bytes, f.payloadStart, f.end).name);
  }
  // IR < 4 lists initializers among the inputs too; they are weights, not inputs.
  graph.inputs = declared.filter((i) => !graph.initializers.has(i.name));
  return graph;
}
