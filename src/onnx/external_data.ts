/**
 * External data, both ways round. ONNX files over protobuf's 2 GB limit keep their weights in side
 * files (`model.onnx_data`, …) named inside the graph: {@linkcode externalDataFiles} finds those
 * names in the graph's bytes, so the session can be given the side files from any model source
 * (path, URL, in-memory files) — onnxruntime alone would look for them relative to the process's
 * working directory. {@linkcode isExternalTensor} is the one test of whether a tensor's data is
 * external (./graph.ts refuses such initializers; {@linkcode referenceWeights} leaves them).
 *
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
 * data. The tensors onnxruntime builds hold the same bytes as before, so results are unchanged. The
 * wasm backend's session (../backend/ort/session.ts) uses it.
 *
 * @module
 */

import { concat, type Field, fields, LEN, lenField, readVarint, VARINT } from "./protobuf.ts";
import { DATA_LOCATION_EXTERNAL, EntryField, GraphField, ModelField, TensorField } from "./schema.ts";

/**
 * Whether the tensor whose fields are `tensor` (of `bytes`) keeps its data outside the file: it has
 * `external_data` entries, or `data_location` EXTERNAL.
 */
export function isExternalTensor(bytes: Uint8Array, tensor: readonly Field[]): boolean {
  return tensor.some((t) =>
    (t.number === TensorField.DATA_LOCATION && t.wire === VARINT &&
      readVarint(bytes, t.payloadStart)[0] === DATA_LOCATION_EXTERNAL) ||
    t.number === TensorField.EXTERNAL_DATA
  );
}

/** `key: "location"` of an ONNX StringStringEntryProto: field 1, length 8, "location". */
const LOCATION_KEY = [0x0a, 0x08, 0x6c, 0x6f, 0x63, 0x61, 0x74, 0x69, 0x6f, 0x6e];

/**
 * The external data files an ONNX graph refers to (the `location` entries of its tensors'
 * `external_data`), in order of first use, each once. Scans the protobuf bytes for the entry's
 * encoding (key "location", then field 2, the value), which is exact for files written by the
 * onnx library; names that escape the folder (absolute, or with "..") are refused.
 *
 * @param bytes The .onnx file.
 * @returns Relative file names, e.g. `["model.onnx_data"]`; empty when all data is inline.
 * @throws {RangeError} a location that is absolute or goes up a folder.
 * @example
 * ```ts
 * import { externalDataFiles } from "./external_data.ts";
 * import assert from "node:assert/strict";
 * const name = new TextEncoder().encode("model.onnx_data");
 * const entry = new Uint8Array([0x0a, 0x08, ...new TextEncoder().encode("location"), 0x12, name.length, ...name]);
 * assert.deepEqual(externalDataFiles(entry), ["model.onnx_data"]);
 * ```
 */
export function externalDataFiles(bytes: Uint8Array): string[] {
  const found = new Set<string>();
  const decoder = new TextDecoder("utf-8", { fatal: false });
  const n = LOCATION_KEY.length;
  outer: for (
    let i = bytes.indexOf(LOCATION_KEY[0]);
    i >= 0 && i + n + 2 <= bytes.length;
    i = bytes.indexOf(LOCATION_KEY[0], i + 1)
  ) {
    for (let j = 1; j < n; j++) if (bytes[i + j] !== LOCATION_KEY[j]) continue outer;
    if (bytes[i + n] !== 0x12) continue;
    // The value's length is a varint.
    let length = 0, shift = 0, at = i + n + 1;
    for (; at < bytes.length && shift < 35; shift += 7) {
      const b = bytes[at++];
      length |= (b & 0x7f) << shift;
      if ((b & 0x80) === 0) break;
    }
    if (length <= 0 || at + length > bytes.length) continue;
    const name = decoder.decode(bytes.subarray(at, at + length));
    if (name.startsWith("/") || name.split(/[\\/]/).includes("..") || /^[a-z]:/i.test(name)) {
      throw new RangeError(
        `Cannot load external data: the graph names ${JSON.stringify(name)}, outside its folder`,
      );
    }
    found.add(name);
  }
  return [...found];
}

/** The graph with its large initializers made external, and the buffer they refer to. */
export interface ReferencedWeights {
  /** The rewritten model: the original without the moved `raw_data` payloads. */
  model: Uint8Array;
  /** The location the rewritten graph names for the moved weights. */
  location: string;
  /** How many initializers were moved, and their bytes. */
  moved: { tensors: number; bytes: number };
}

const encoder = new TextEncoder();

function stringEntry(key: string, value: string): Uint8Array[] {
  return lenField(TensorField.EXTERNAL_DATA, [
    ...lenField(EntryField.KEY, [encoder.encode(key)]),
    ...lenField(EntryField.VALUE, [encoder.encode(value)]),
  ]);
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
 * import { referenceWeights } from "./external_data.ts";
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
    if (f.number !== ModelField.GRAPH || f.wire !== LEN) {
      out.push(bytes.subarray(f.start, f.end));
      continue;
    }
    const graph: Uint8Array[] = [];
    for (const g of fields(bytes, f.payloadStart, f.end)) {
      if (g.number !== GraphField.INITIALIZER || g.wire !== LEN) {
        graph.push(bytes.subarray(g.start, g.end));
        continue;
      }
      const tensor = fields(bytes, g.payloadStart, g.end);
      const raw = tensor.find((t) => t.number === TensorField.RAW_DATA && t.wire === LEN);
      const external = isExternalTensor(bytes, tensor);
      if (raw === undefined || external || raw.end - raw.payloadStart < minBytes) {
        graph.push(bytes.subarray(g.start, g.end));
        continue;
      }
      const kept = tensor.filter((t) => t !== raw).map((t) => bytes.subarray(t.start, t.end));
      const length = raw.end - raw.payloadStart;
      graph.push(
        ...lenField(GraphField.INITIALIZER, [
          ...kept,
          ...stringEntry("location", location),
          ...stringEntry("offset", String(raw.payloadStart)),
          ...stringEntry("length", String(length)),
          new Uint8Array([TensorField.DATA_LOCATION * 8 + VARINT, DATA_LOCATION_EXTERNAL]),
        ]),
      );
      tensors++;
      movedBytes += length;
    }
    out.push(...lenField(ModelField.GRAPH, graph));
  }
  if (tensors === 0) return undefined;
  return { model: concat(out), location, moved: { tensors, bytes: movedBytes } };
}
