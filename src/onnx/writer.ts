/**
 * A small ONNX graph builder and a streaming `ModelProto` writer. Initializers are lazy: their
 * bytes are produced one at a time while the file is written, so converting a model holds at
 * most one weight tensor in memory besides the source file. The small graph part (nodes, inputs,
 * outputs, each initializer's header) is encoded here with ./protobuf.ts, byte for byte as npm
 * `onnx-proto` (protobufjs) encodes the same objects (./writer_test.ts checks that); each
 * initializer is framed by hand as `raw_data` (protobuf lets a repeated field's entries follow the
 * other fields), which keeps the output a valid `ModelProto`.
 *
 * @module
 */

import { DataType } from "./data_types.ts";
import { fieldKey, LEN, ProtoWriter, varint } from "./protobuf.ts";
import {
  AttributeField,
  AttributeType,
  DimField,
  GraphField,
  ModelField,
  NodeField,
  OpsetField,
  ShapeField,
  TensorField,
  TensorTypeField,
  TypeField,
  ValueInfoField,
} from "./schema.ts";

/** An attribute value: a number (INT), a list of numbers (INTS), a string, `{ float }` or `{ floats }`. */
export type AttrValue = number | number[] | string | { float: number } | { floats: number[] };

/** A weight whose bytes are made only when the file is written. */
export interface LazyInitializer {
  /** Initializer name. */
  name: string;
  /** ONNX element type ({@linkcode DataType}). */
  dataType: number;
  /** Shape. */
  dims: number[];
  /** Exact byte length `produce()` returns. */
  byteLength: number;
  /** Makes the raw little-endian bytes; called once, while the file is written. */
  produce: () => Uint8Array;
}

/** A graph input or output: a name, an element type and dims (numbers or symbolic names). */
export interface ValueInfo {
  /** Value name. */
  name: string;
  /** ONNX element type. */
  dataType: number;
  /**
   * Dims: numbers, or names of symbolic dims; `null` declares no shape at all (any rank: the
   * runtime then accepts a tensor of any rank there).
   */
  dims: (number | string)[] | null;
}

function attribute(name: string, value: AttrValue): Record<string, unknown> {
  const T = AttributeType;
  if (typeof value === "string") return { name, type: T.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) return { name, type: T.INTS, ints: value };
  if (typeof value === "number") return { name, type: T.INT, i: value };
  if ("float" in value) return { name, type: T.FLOAT, f: value.float };
  return { name, type: T.FLOATS, floats: value.floats };
}

/**
 * Collects nodes, inputs, outputs and (lazy) initializers; names intermediate values uniquely.
 *
 * @example
 * ```ts
 * import { DataType, GraphBuilder } from "./mod.ts";
 * const g = new GraphBuilder();
 * g.input({ name: "x", dataType: DataType.FLOAT, dims: ["n"] });
 * const [y] = g.node("Neg", ["x"]);
 * g.output({ name: y, dataType: DataType.FLOAT, dims: ["n"] });
 * console.assert(g.nodes.length === 1);
 * ```
 */
export class GraphBuilder {
  /** Nodes in topological order (as added). */
  readonly nodes: Record<string, unknown>[] = [];
  /** Graph inputs. */
  readonly inputs: ValueInfo[] = [];
  /** Graph outputs. */
  readonly outputs: ValueInfo[] = [];
  /** Initializers in file order. */
  readonly initializers: LazyInitializer[] = [];
  #count = 0;
  #names = new Set<string>();

  /** Adds a graph input; returns its name. */
  input(v: ValueInfo): string {
    this.inputs.push(v);
    return v.name;
  }

  /** Declares a graph output (a value some node produces). */
  output(v: ValueInfo): void {
    this.outputs.push(v);
  }

  /** A fresh value name with `hint` in it. */
  fresh(hint: string): string {
    return `${hint}_${this.#count++}`;
  }

  /**
   * Adds a node; returns its output names (fresh ones unless `outputs` names them).
   * `outputs` may be a count of fresh outputs.
   */
  node(
    op: string,
    inputs: string[],
    attrs: Record<string, AttrValue> = {},
    outputs: string[] | number = 1,
    domain = "",
  ): string[] {
    const outs = typeof outputs === "number"
      ? Array.from({ length: outputs }, () => this.fresh(op.toLowerCase()))
      : outputs;
    this.nodes.push({
      opType: op,
      domain,
      name: `${op}_${this.nodes.length}`,
      input: inputs,
      output: outs,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outs;
  }

  /** Adds a lazy initializer; returns its name. Names must be unique. */
  initializer(init: LazyInitializer): string {
    if (this.#names.has(init.name)) throw new Error(`GraphBuilder: duplicate initializer ${init.name}`);
    this.#names.add(init.name);
    this.initializers.push(init);
    return init.name;
  }

  /** A float32 initializer from data at hand (small constants). */
  floats(name: string, dims: number[], data: Float32Array): string {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    return this.initializer({
      name,
      dataType: DataType.FLOAT,
      dims,
      byteLength: bytes.length,
      produce: () => bytes,
    });
  }

  /** An int64 initializer (shapes, axes, indices). */
  ints(name: string, values: number[], dims: number[] = [values.length]): string {
    const data = BigInt64Array.from(values, (v) => BigInt(v));
    const bytes = new Uint8Array(data.buffer);
    return this.initializer({
      name,
      dataType: DataType.INT64,
      dims,
      byteLength: bytes.length,
      produce: () => bytes,
    });
  }
}

/** Options of {@linkcode writeModel}. */
export interface WriteModelOptions {
  /** Opset imports, e.g. `{ "": 17, "com.microsoft": 1 }`. */
  opsets: Record<string, number>;
  /** Graph name. */
  graphName?: string;
  /** Called after each initializer is written with (written so far, total) initializer bytes. */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Writes the graph as an ONNX `ModelProto` (IR version 8) to `path`, streaming initializers.
 * Returns the file size in bytes.
 */
export async function writeModel(
  path: string,
  graph: GraphBuilder,
  options: WriteModelOptions,
): Promise<number> {
  const head = encodeModelHeader(options.opsets);
  const core = encodeGraph(options.graphName ?? "main_graph", graph);
  const frames = graph.initializers.map((init) => {
    const header = encodeTensorHeader(init);
    const raw = [...fieldKey(TensorField.RAW_DATA, LEN), ...varint(init.byteLength)];
    const tensorLength = header.length + raw.length + init.byteLength;
    const prefix = new Uint8Array([
      ...fieldKey(GraphField.INITIALIZER, LEN),
      ...varint(tensorLength),
      ...header,
      ...raw,
    ]);
    return { init, prefix, length: prefix.length + init.byteLength };
  });
  const graphLength = core.length + frames.reduce((a, f) => a + f.length, 0);
  const total = frames.reduce((a, f) => a + f.init.byteLength, 0);
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  let size = 0;
  const write = async (bytes: Uint8Array) => {
    for (let at = 0; at < bytes.length;) at += await file.write(bytes.subarray(at));
    size += bytes.length;
  };
  try {
    await write(head);
    await write(new Uint8Array([...fieldKey(ModelField.GRAPH, LEN), ...varint(graphLength)]));
    await write(core);
    let done = 0;
    for (const { init, prefix } of frames) {
      const data = init.produce();
      if (data.length !== init.byteLength) {
        throw new Error(
          `writeModel: ${init.name} produced ${data.length} bytes, expected ${init.byteLength}`,
        );
      }
      await write(prefix);
      await write(data);
      done += data.length;
      options.onProgress?.(done, total);
    }
  } finally {
    file.close();
  }
  return size;
}

// ---------------------------------------------------------------------------------------------
// Encoding: the fields protobufjs writes for these objects, in its order (ascending field number),
// a field whenever it is present and not null (proto2: an empty string or a 0 is written), a
// repeated field only when it has entries (numbers packed).

/** Whether `o[key]` is present and not null. */
function has(o: Record<string, unknown>, key: string): boolean {
  return o[key] != null && Object.hasOwn(o, key);
}

function list<T>(o: Record<string, unknown>, key: string): T[] {
  const v = o[key];
  return Array.isArray(v) ? v as T[] : [];
}

function encodeAttribute(w: ProtoWriter, a: Record<string, unknown>): void {
  if (has(a, "name")) w.string(AttributeField.NAME, a.name as string);
  if (has(a, "f")) w.float(AttributeField.F, a.f as number);
  if (has(a, "i")) w.int(AttributeField.I, a.i as number);
  if (has(a, "s")) w.bytes(AttributeField.S, a.s as Uint8Array);
  w.packedFloats(AttributeField.FLOATS, list<number>(a, "floats"));
  w.packedInts(AttributeField.INTS, list<number>(a, "ints"));
  if (has(a, "type")) w.int(AttributeField.TYPE, a.type as number);
}

function encodeNode(w: ProtoWriter, n: Record<string, unknown>): void {
  for (const i of list<string>(n, "input")) w.string(NodeField.INPUT, i);
  for (const o of list<string>(n, "output")) w.string(NodeField.OUTPUT, o);
  if (has(n, "name")) w.string(NodeField.NAME, n.name as string);
  if (has(n, "opType")) w.string(NodeField.OP_TYPE, n.opType as string);
  for (const a of list<Record<string, unknown>>(n, "attribute")) {
    w.message(NodeField.ATTRIBUTE, (m) => encodeAttribute(m, a));
  }
  if (has(n, "domain")) w.string(NodeField.DOMAIN, n.domain as string);
}

function encodeValueInfo(w: ProtoWriter, v: ValueInfo): void {
  w.string(ValueInfoField.NAME, v.name);
  w.message(ValueInfoField.TYPE, (type) =>
    type.message(TypeField.TENSOR_TYPE, (tensor) => {
      tensor.int(TensorTypeField.ELEM_TYPE, v.dataType);
      if (v.dims === null) return;
      const dims = v.dims;
      tensor.message(TensorTypeField.SHAPE, (shape) => {
        for (const d of dims) {
          shape.message(ShapeField.DIM, (dim) => {
            if (typeof d === "number") dim.int(DimField.DIM_VALUE, d);
            else dim.string(DimField.DIM_PARAM, d);
          });
        }
      });
    }));
}

/** ModelProto fields 1, 2, 3 and 8: IR version 8, producer, opset imports (the graph follows). */
function encodeModelHeader(opsets: Record<string, number>): Uint8Array {
  const w = new ProtoWriter();
  w.int(ModelField.IR_VERSION, 8);
  w.string(ModelField.PRODUCER_NAME, "spectr-convert");
  w.string(ModelField.PRODUCER_VERSION, "0.1.0");
  for (const [domain, version] of Object.entries(opsets)) {
    w.message(ModelField.OPSET_IMPORT, (m) => {
      m.string(OpsetField.DOMAIN, domain);
      m.int(OpsetField.VERSION, version);
    });
  }
  return w.finish();
}

/** GraphProto without its initializers: nodes, name, inputs, outputs. */
function encodeGraph(name: string, graph: GraphBuilder): Uint8Array {
  const w = new ProtoWriter();
  for (const n of graph.nodes) w.message(GraphField.NODE, (m) => encodeNode(m, n));
  w.string(GraphField.NAME, name);
  for (const v of graph.inputs) w.message(GraphField.INPUT, (m) => encodeValueInfo(m, v));
  for (const v of graph.outputs) w.message(GraphField.OUTPUT, (m) => encodeValueInfo(m, v));
  return w.finish();
}

/** TensorProto without its data: dims, data type, name. */
function encodeTensorHeader(init: LazyInitializer): Uint8Array {
  const w = new ProtoWriter();
  w.packedInts(TensorField.DIMS, init.dims);
  w.int(TensorField.DATA_TYPE, init.dataType);
  w.string(TensorField.NAME, init.name);
  return w.finish();
}
