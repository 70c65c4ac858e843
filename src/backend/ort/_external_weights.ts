/**
 * Loading an ONNX file with about one copy of its weights in onnxruntime-web's memory instead of
 * three. Given inline weights, onnxruntime-web copies the whole file into its WebAssembly heap,
 * parses it there (a second copy: the protobuf's `raw_data`) and builds the initializer tensors (a
 * third), and a WebAssembly heap never shrinks: the high-water mark stays resident for the life of
 * the process. Given a graph whose initializers are *external data* in a mounted buffer, it copies
 * each initializer straight from that JavaScript buffer into its tensor.
 *
 * {@linkcode referenceWeights} rewrites the graph that way without copying the weights: each large
 * initializer's `raw_data` is replaced by an `external_data` entry pointing at the same bytes of the
 * original file (location, offset, length), and the original file is then passed as that external
 * data. The tensors onnxruntime builds hold the same bytes as before, so results are unchanged.
 *
 * @module
 */

import { fields, LEN, readVarint, VARINT } from "../../model/_protobuf.ts";

/** Field numbers (onnx.proto3). */
const MODEL_GRAPH = 7;
const GRAPH_INITIALIZER = 5;
const TENSOR_RAW_DATA = 9;
const TENSOR_EXTERNAL_DATA = 13;
const TENSOR_DATA_LOCATION = 14;
const DATA_LOCATION_EXTERNAL = 1;
const ENTRY_KEY = 1, ENTRY_VALUE = 2;

/** The graph with its large initializers made external, and the buffer they refer to. */
export interface ReferencedWeights {
  /** The rewritten model: the original without the moved `raw_data` payloads. */
  model: Uint8Array;
  /** The location the rewritten graph names for the moved weights. */
  location: string;
  /** How many initializers were moved, and their bytes. */
  moved: { tensors: number; bytes: number };
}

function varint(value: number): number[] {
  const out: number[] = [];
  while (value >= 128) {
    out.push((value % 128) | 0x80);
    value = Math.floor(value / 128);
  }
  out.push(value);
  return out;
}

const encoder = new TextEncoder();

/** A length-delimited field holding `payload` (total length of the parts). */
function lenField(number: number, parts: Uint8Array[]): Uint8Array[] {
  const length = parts.reduce((n, p) => n + p.length, 0);
  return [new Uint8Array([...varint(number * 8 + LEN), ...varint(length)]), ...parts];
}

function stringEntry(key: string, value: string): Uint8Array[] {
  return lenField(TENSOR_EXTERNAL_DATA, [
    ...lenField(ENTRY_KEY, [encoder.encode(key)]),
    ...lenField(ENTRY_VALUE, [encoder.encode(value)]),
  ]);
}

function size(parts: Uint8Array[]): number {
  return parts.reduce((n, p) => n + p.length, 0);
}

/**
 * Rewrites an ONNX model so that its large initializers are external data at `location`, referring
 * to their own bytes in `bytes` (which must then be given to onnxruntime as that external data file).
 * Tensors already external, small tensors (under `minBytes`) and tensors in subgraphs stay as they
 * are. Nothing is copied but the graph's structure (nodes, names, small tensors).
 *
 * @param bytes The .onnx file.
 * @param location The external-data name to use; it must not be one the graph already names.
 * @param minBytes Initializers with fewer `raw_data` bytes stay inline.
 * @returns The rewritten model, or `undefined` when there is nothing to move (or `bytes` is not a
 *   model this reader understands: onnxruntime then reports the original's problem itself).
 * @example
 * ```ts
 * import { referenceWeights } from "./_external_weights.ts";
 * import assert from "node:assert/strict";
 * // ModelProto { graph { initializer { name: "w", raw_data: 4096 bytes } } }
 * const raw = new Uint8Array(4096).fill(7);
 * const tensor = [0x42, 0x01, 0x77, 0x4a, 0x80, 0x20, ...raw]; // name "w", raw_data (len 4096)
 * const graph = [0x2a, 0x86, 0x20, ...tensor]; // initializer (len 4102)
 * const model = new Uint8Array([0x3a, 0x89, 0x20, ...graph]); // graph (len 4105)
 * const out = referenceWeights(model, "weights.bin", 1024)!;
 * assert.deepEqual(out.moved, { tensors: 1, bytes: 4096 });
 * assert.ok(out.model.length < 100);
 * ```
 */
export function referenceWeights(
  bytes: Uint8Array,
  location: string,
  minBytes = 1024,
): ReferencedWeights | undefined {
  try {
    return rewrite(bytes, location, minBytes);
  } catch (error) {
    if (error instanceof RangeError) return undefined;
    throw error;
  }
}

function rewrite(bytes: Uint8Array, location: string, minBytes: number): ReferencedWeights | undefined {
  const model = fields(bytes, 0, bytes.length);
  let tensors = 0, movedBytes = 0;
  const out: Uint8Array[] = [];
  for (const f of model) {
    if (f.number !== MODEL_GRAPH || f.wire !== LEN) {
      out.push(bytes.subarray(f.start, f.end));
      continue;
    }
    const graph: Uint8Array[] = [];
    for (const g of fields(bytes, f.payloadStart, f.end)) {
      if (g.number !== GRAPH_INITIALIZER || g.wire !== LEN) {
        graph.push(bytes.subarray(g.start, g.end));
        continue;
      }
      const tensor = fields(bytes, g.payloadStart, g.end);
      const raw = tensor.find((t) => t.number === TENSOR_RAW_DATA && t.wire === LEN);
      const external = tensor.some((t) =>
        (t.number === TENSOR_DATA_LOCATION && t.wire === VARINT &&
          readVarint(bytes, t.payloadStart)[0] === DATA_LOCATION_EXTERNAL) ||
        t.number === TENSOR_EXTERNAL_DATA
      );
      if (raw === undefined || external || raw.end - raw.payloadStart < minBytes) {
        graph.push(bytes.subarray(g.start, g.end));
        continue;
      }
      const kept = tensor.filter((t) => t !== raw).map((t) => bytes.subarray(t.start, t.end));
      const length = raw.end - raw.payloadStart;
      graph.push(
        ...lenField(GRAPH_INITIALIZER, [
          ...kept,
          ...stringEntry("location", location),
          ...stringEntry("offset", String(raw.payloadStart)),
          ...stringEntry("length", String(length)),
          new Uint8Array([TENSOR_DATA_LOCATION * 8 + VARINT, DATA_LOCATION_EXTERNAL]),
        ]),
      );
      tensors++;
      movedBytes += length;
    }
    out.push(...lenField(MODEL_GRAPH, graph));
  }
  if (tensors === 0) return undefined;
  const result = new Uint8Array(size(out));
  let at = 0;
  for (const part of out) {
    result.set(part, at);
    at += part.length;
  }
  return { model: result, location, moved: { tensors, bytes: movedBytes } };
}
