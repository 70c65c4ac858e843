/**
 * Queries on a graph read by ./graph.ts that do not depend on what the graph computes: who produces
 * and who reads a value, following a value through reshapes and casts, a tensor by name (an
 * initializer or a `Constant`'s value), a tensor's values as numbers. The kernel backend's weight
 * readers (../backend/kernel/transformer_weights.ts, q8_graph_weights.ts) build on them.
 *
 * @module
 */

import { DataType } from "./data_types.ts";
import type { OnnxGraph, OnnxInitializer, OnnxNode } from "./graph.ts";

/** Op types a value passes through unchanged in meaning (looking up or down for a norm, ids). */
export const PASS_THROUGH: ReadonlySet<string> = new Set([
  "Reshape",
  "Cast",
  "Identity",
  "Squeeze",
  "Unsqueeze",
  "Flatten",
]);

/** A graph with its value → producer and value → consumers maps. */
export interface GraphIndex {
  /** The graph. */
  graph: OnnxGraph;
  /** The node computing each value. */
  producer: Map<string, OnnxNode>;
  /**
   * The nodes reading each value, in node order; a node reading a value twice is listed twice.
   * Omitted optional inputs ("") are not values.
   */
  consumers: Map<string, OnnxNode[]>;
}

/**
 * The producer and consumer maps of `graph`.
 *
 * @example
 * ```ts
 * import { indexGraph } from "./queries.ts";
 * import assert from "node:assert/strict";
 * const neg = { opType: "Neg", domain: "", name: "n", inputs: ["x"], outputs: ["y"], attributes: {} };
 * const ix = indexGraph({ initializers: new Map(), constants: new Map(), nodes: [neg], inputs: [], outputs: ["y"] });
 * assert.equal(ix.producer.get("y"), neg);
 * assert.deepEqual(ix.consumers.get("x"), [neg]);
 * ```
 */
export function indexGraph(graph: OnnxGraph): GraphIndex {
  const producer = new Map<string, OnnxNode>(), consumers = new Map<string, OnnxNode[]>();
  for (const node of graph.nodes) {
    for (const o of node.outputs) producer.set(o, node);
    for (const i of node.inputs) {
      if (i === "") continue;
      const list = consumers.get(i);
      if (list) list.push(node);
      else consumers.set(i, [node]);
    }
  }
  return { graph, producer, consumers };
}

/** The tensor named `name`: an initializer, else a `Constant` node's value. */
export function tensorOf(ix: GraphIndex, name: string): OnnxInitializer | undefined {
  return ix.graph.initializers.get(name) ?? ix.graph.constants.get(name);
}

/** The number of elements of a tensor of shape `dims` (1 for a scalar). */
export function elementCount(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

/** Whether the tensor is float32 or float16. */
export function isFloatTensor(t: OnnxInitializer): boolean {
  return t.dataType === DataType.FLOAT || t.dataType === DataType.FLOAT16;
}

/** Dims as messages show them: `[2, 3]`. */
export function formatDims(dims: readonly number[]): string {
  return `[${dims.join(", ")}]`;
}

/** The value of the IEEE half-precision bits `h`. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1, exp = (h >> 10) & 0x1f, frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** A copy of `bytes` in an ArrayBuffer of its own (aligned; `slice` of a Node Buffer is a view). */
export function ownBuffer(bytes: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(bytes.length);
  copy.set(bytes);
  return copy.buffer;
}

/** An int32 / int64 tensor's values (undefined: another type, or bytes that do not fit its dims). */
export function intValues(t: OnnxInitializer | undefined): number[] | undefined {
  if (!t) return undefined;
  const n = elementCount(t.dims);
  if (t.dataType === DataType.INT32 && t.raw.length === 4 * n) {
    return Array.from(new Int32Array(ownBuffer(t.raw)));
  }
  if (t.dataType === DataType.INT64 && t.raw.length === 8 * n) {
    return Array.from(new BigInt64Array(ownBuffer(t.raw)), Number);
  }
  return undefined;
}

/** The value `v` is a copy of, looking up through reshapes and casts (at most 8 nodes). */
export function upThrough(ix: GraphIndex, v: string, ops: ReadonlySet<string> = PASS_THROUGH): string {
  for (let i = 0; i < 8; i++) {
    const p = ix.producer.get(v);
    if (!p || !ops.has(p.opType)) return v;
    v = p.inputs[0];
  }
  return v;
}

/** The node producing `value`, looking through reshapes and casts (at most 8 nodes). */
export function sourceOf(ix: GraphIndex, value: string): OnnxNode | undefined {
  let node = ix.producer.get(value);
  for (let i = 0; i < 8 && node && PASS_THROUGH.has(node.opType); i++) node = ix.producer.get(node.inputs[0]);
  return node;
}

/** The one consumer of `v` that is not a Shape (exporters read shapes off every value), if one. */
export function onlyUse(ix: GraphIndex, v: string): OnnxNode | undefined {
  const uses = (ix.consumers.get(v) ?? []).filter((n) => n.opType !== "Shape");
  return uses.length === 1 ? uses[0] : undefined;
}

/** The nodes reading `name`, each once, in node order (a scan: no index needed). */
export function usersOf(graph: OnnxGraph, name: string): OnnxNode[] {
  return graph.nodes.filter((n) => n.inputs.includes(name));
}

/**
 * The first `opType` node whose input `slot` is `name`, e.g. the `MatMulNBits` multiplying by a
 * given `qweight` (slot 1).
 */
export function nodeWithInput(
  graph: OnnxGraph,
  opType: string,
  slot: number,
  name: string,
): OnnxNode | undefined {
  return graph.nodes.find((n) => n.opType === opType && n.inputs[slot] === name);
}
