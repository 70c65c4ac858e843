/**
 * Reads the structure and weights of an ONNX model without onnxruntime: its nodes (in file order,
 * which ONNX requires to be topological), its graph inputs and outputs, and its initializers as
 * views into the file's bytes (no copy). Enough for a backend that runs the math itself to find
 * which initializer is which weight (see ../backend/kernel/transformer_weights.ts, with the
 * queries of ./queries.ts).
 *
 * Only the main graph is read: subgraphs (If / Loop bodies), sparse initializers, value_info and
 * metadata are skipped.
 *
 * @module
 */

import { InvalidModelError } from "../model/errors.ts";
import { DataType, dataTypeInfo } from "./data_types.ts";
import { isExternalTensor } from "./external_data.ts";
import {
  type Field,
  fields,
  LEN,
  readFloat32s,
  readFloat64s,
  readInt64,
  readInt64s,
  readString,
  readVarintField,
  VARINT,
} from "./protobuf.ts";
import {
  AttributeField,
  AttributeType,
  DimField,
  GraphField,
  ModelField,
  NodeField,
  ShapeField,
  TensorField,
  TensorTypeField,
  TypeField,
  ValueInfoField,
} from "./schema.ts";

/** A tensor stored in the graph: an initializer, or the value of a `Constant` node. */
export interface OnnxInitializer {
  /** The tensor's name (for a `Constant` node: its output's name). */
  name: string;
  /** Shape; `[]` for a scalar. */
  dims: number[];
  /** `TensorProto.DataType` ({@linkcode DataType}). */
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
  /** Element type ({@linkcode DataType}); 0 when not declared. */
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

/** Bytes per element of a type stored in `int32_data` (fp16 / bf16 as their uint16 bits). */
function int32DataSize(dataType: number): number | undefined {
  const info = dataTypeInfo(dataType);
  return info?.field === "int32_data" ? info.bytes : undefined;
}

function readTensor(bytes: Uint8Array, start: number, end: number, fallbackName = ""): OnnxInitializer {
  const fs = fields(bytes, start, end);
  const of = (n: number) => fs.filter((f) => f.number === n);
  const nameField = of(TensorField.NAME)[0];
  const name = nameField ? readString(bytes, nameField) : fallbackName;
  const dims = readInt64s(bytes, of(TensorField.DIMS));
  const typeField = of(TensorField.DATA_TYPE)[0];
  const dataType = typeField ? readVarintField(bytes, typeField) : 0;
  if (isExternalTensor(bytes, fs)) {
    throw new InvalidModelError(
      `Cannot read the ONNX graph: initializer "${name}" is stored as external data, which this reader does not support (pass a model with its weights inline)`,
    );
  }
  const rawField = of(TensorField.RAW_DATA)[0];
  let raw: Uint8Array;
  if (rawField) raw = bytes.subarray(rawField.payloadStart, rawField.end);
  else if (of(TensorField.FLOAT_DATA).length > 0) {
    raw = new Uint8Array(Float32Array.from(readFloat32s(bytes, of(TensorField.FLOAT_DATA))).buffer);
  } else if (of(TensorField.INT64_DATA).length > 0) {
    raw = new Uint8Array(BigInt64Array.from(readInt64s(bytes, of(TensorField.INT64_DATA)), BigInt).buffer);
  } else if (of(TensorField.DOUBLE_DATA).length > 0) {
    raw = new Uint8Array(Float64Array.from(readFloat64s(bytes, of(TensorField.DOUBLE_DATA))).buffer);
  } else if (of(TensorField.UINT64_DATA).length > 0) {
    raw = new Uint8Array(BigUint64Array.from(readInt64s(bytes, of(TensorField.UINT64_DATA)), BigInt).buffer);
  } else if (of(TensorField.INT32_DATA).length > 0) {
    const values = readInt64s(bytes, of(TensorField.INT32_DATA));
    const size = int32DataSize(dataType);
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
    const nameField = fs.find((f) => f.number === AttributeField.NAME);
    const name = nameField ? readString(bytes, nameField) : "";
    const one = (n: number) => fs.filter((f) => f.number === n);
    if (name === "value") {
      const t = one(AttributeField.T)[0];
      if (t) return { ...readTensor(bytes, t.payloadStart, t.end, output), name: output };
    } else if (name === "value_float" || name === "value_floats") {
      const values = readFloat32s(bytes, one(AttributeField.F).concat(one(AttributeField.FLOATS)));
      const dims = name === "value_float" ? [] : [values.length];
      return {
        name: output,
        dims,
        dataType: DataType.FLOAT,
        raw: new Uint8Array(Float32Array.from(values).buffer),
      };
    } else if (name === "value_int" || name === "value_ints") {
      const values = readInt64s(bytes, one(AttributeField.I).concat(one(AttributeField.INTS)));
      const dims = name === "value_int" ? [] : [values.length];
      const raw = new Uint8Array(BigInt64Array.from(values, BigInt).buffer);
      return { name: output, dims, dataType: DataType.INT64, raw };
    }
  }
  return undefined;
}

function readNode(bytes: Uint8Array, start: number, end: number, constants: Map<string, OnnxInitializer>) {
  const fs = fields(bytes, start, end);
  const strings = (n: number) =>
    fs.filter((f) => f.number === n && f.wire === LEN).map((f) => readString(bytes, f));
  const node: OnnxNode = {
    opType: strings(NodeField.OP_TYPE)[0] ?? "",
    domain: strings(NodeField.DOMAIN)[0] ?? "",
    name: strings(NodeField.NAME)[0] ?? "",
    inputs: strings(NodeField.INPUT),
    outputs: strings(NodeField.OUTPUT),
    attributes: {},
  };
  const attrs = fs.filter((f) => f.number === NodeField.ATTRIBUTE && f.wire === LEN)
    .map((f) => fields(bytes, f.payloadStart, f.end));
  for (const a of attrs) {
    const nameField = a.find((f) => f.number === AttributeField.NAME);
    if (!nameField) continue;
    const name = readString(bytes, nameField);
    const one = (n: number) => a.filter((f) => f.number === n);
    // The `type` field says which field is meant; exporters omit the zero-valued ones, so read
    // whichever is present, in the order a scalar beats a list.
    const [F, I, S, T, FLOATS, INTS] = [
      AttributeField.F,
      AttributeField.I,
      AttributeField.S,
      AttributeField.T,
      AttributeField.FLOATS,
      AttributeField.INTS,
    ];
    if (one(F).length > 0) node.attributes[name] = readFloat32s(bytes, one(F))[0];
    else if (one(I).length > 0) node.attributes[name] = readInt64s(bytes, one(I))[0];
    else if (one(S).length > 0) node.attributes[name] = readString(bytes, one(S)[0]);
    else if (one(INTS).length > 0) node.attributes[name] = readInt64s(bytes, one(INTS));
    else if (one(FLOATS).length > 0) node.attributes[name] = readFloat32s(bytes, one(FLOATS));
    else if (one(T).length > 0) {
      const t = one(T)[0];
      try {
        const value = readTensor(bytes, t.payloadStart, t.end);
        node.tensorAttributes = { ...node.tensorAttributes, [name]: value };
      } catch (error) {
        // external data or an unreadable type: left out, as before tensor attributes were read
        if (!(error instanceof InvalidModelError)) throw error;
      }
    } else {
      // An INT / FLOAT attribute equal to 0 is written as its type alone.
      const type = a.find((f) => f.number === AttributeField.TYPE);
      const t = type ? readVarintField(bytes, type) : 0;
      if (t === AttributeType.FLOAT || t === AttributeType.INT) node.attributes[name] = 0;
      else if (t === AttributeType.FLOATS || t === AttributeType.INTS) node.attributes[name] = [];
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
  const nameField = fs.find((f) => f.number === ValueInfoField.NAME);
  const info: OnnxGraphInput = { name: nameField ? readString(bytes, nameField) : "", dataType: 0, dims: [] };
  const type = fs.find((f) => f.number === ValueInfoField.TYPE && f.wire === LEN);
  const tensorType = type &&
    fields(bytes, type.payloadStart, type.end).find((f) =>
      f.number === TypeField.TENSOR_TYPE && f.wire === LEN
    );
  if (!tensorType) return info;
  for (const f of fields(bytes, tensorType.payloadStart, tensorType.end)) {
    if (f.number === TensorTypeField.ELEM_TYPE && f.wire === VARINT) {
      info.dataType = readVarintField(bytes, f);
    }
    if (f.number !== TensorTypeField.SHAPE || f.wire !== LEN) continue;
    for (const d of fields(bytes, f.payloadStart, f.end)) {
      if (d.number !== ShapeField.DIM || d.wire !== LEN) continue;
      const dim = fields(bytes, d.payloadStart, d.end);
      const value = dim.find((x) => x.number === DimField.DIM_VALUE && x.wire === VARINT);
      const param = dim.find((x) => x.number === DimField.DIM_PARAM && x.wire === LEN);
      info.dims.push(value ? readInt64(bytes, value.payloadStart)[0] : param ? readString(bytes, param) : "");
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
 * import { readOnnxGraph } from "./graph.ts";
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
  const graphField = fields(bytes, 0, bytes.length).find((f) =>
    f.number === ModelField.GRAPH && f.wire === LEN
  );
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
    if (f.number === GraphField.NODE) {
      graph.nodes.push(readNode(bytes, f.payloadStart, f.end, graph.constants));
    } else if (f.number === GraphField.INITIALIZER) {
      const t = readTensor(bytes, f.payloadStart, f.end);
      graph.initializers.set(t.name, t);
    } else if (f.number === GraphField.INPUT) declared.push(readValueInfo(bytes, f.payloadStart, f.end));
    else if (f.number === GraphField.OUTPUT) {
      graph.outputs.push(readValueInfo(bytes, f.payloadStart, f.end).name);
    }
  }
  // IR < 4 lists initializers among the inputs too; they are weights, not inputs.
  graph.inputs = declared.filter((i) => !graph.initializers.has(i.name));
  return graph;
}
