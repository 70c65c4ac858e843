/**
 * A small ONNX graph builder and a streaming `ModelProto` writer. Initializers are lazy: their
 * bytes are produced one at a time while the file is written, so converting a model holds at
 * most one weight tensor in memory besides the source file. The small graph part is encoded
 * with npm `onnx-proto`; each initializer is framed by hand as `raw_data` (protobuf lets a
 * repeated field's entries follow the other fields), which keeps the output a valid
 * `ModelProto`.
 *
 * @module
 */

import onnxProto from "npm:onnx-proto@8.0.1";

// deno-lint-ignore no-explicit-any
const { onnx } = onnxProto as any;

/** ONNX tensor element types used here. */
export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT64: 7, BOOL: 9 } as const;

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
  const T = onnx.AttributeProto.AttributeType;
  if (typeof value === "string") return { name, type: T.STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) return { name, type: T.INTS, ints: value };
  if (typeof value === "number") return { name, type: T.INT, i: value };
  if ("float" in value) return { name, type: T.FLOAT, f: value.float };
  return { name, type: T.FLOATS, floats: value.floats };
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

/**
 * Collects nodes, inputs, outputs and (lazy) initializers; names intermediate values uniquely.
 *
 * @example
 * ```ts
 * import { DataType, GraphBuilder } from "./onnx_writer.ts";
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

function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return out;
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
  const head = onnx.ModelProto.encode({
    irVersion: 8,
    producerName: "spectr-convert",
    producerVersion: "0.1.0",
    opsetImport: Object.entries(options.opsets).map(([domain, version]) => ({ domain, version })),
  }).finish() as Uint8Array;
  const core = onnx.GraphProto.encode({
    name: options.graphName ?? "main_graph",
    node: graph.nodes,
    input: graph.inputs.map(valueInfo),
    output: graph.outputs.map(valueInfo),
  }).finish() as Uint8Array;
  const frames = graph.initializers.map((init) => {
    const header = onnx.TensorProto.encode({ name: init.name, dims: init.dims, dataType: init.dataType })
      .finish() as Uint8Array;
    const raw = [0x4a, ...varint(init.byteLength)]; // field 9 (raw_data), length-delimited
    const tensorLength = header.length + raw.length + init.byteLength;
    const prefix = new Uint8Array([0x2a, ...varint(tensorLength), ...header, ...raw]); // GraphProto field 5
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
    await write(new Uint8Array([0x3a, ...varint(graphLength)])); // ModelProto field 7 (graph)
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
