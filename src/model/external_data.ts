/**
 * External data: ONNX files over protobuf's 2 GB limit keep their weights in side files
 * (`model.onnx_data`, …) named inside the graph. This module finds those names in the graph's
 * bytes, so the session can be given the side files from any model source (path, URL, in-memory
 * files) — onnxruntime alone would look for them relative to the process's working directory.
 *
 * @module
 */

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
