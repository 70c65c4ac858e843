/**
 * A small reader and writer of the safetensors format (Hugging Face): a u64 little-endian header
 * length N, N bytes of UTF-8 JSON `{name: {dtype, shape, data_offsets: [begin, end]}, ...}` with an
 * optional `"__metadata__": {string: string}`, then the raw little-endian tensor data (offsets
 * relative to the data's start). Dtypes F32, F16 and BF16 are read as `Float32Array`, I32 as
 * `Int32Array`; the writer pads the header with spaces to a multiple of 8 bytes, as the reference
 * implementation does.
 *
 * @module
 */

import { halfToFloat } from "./dequant.ts";
import { floatToBf16, floatToHalf } from "./_quantize.ts";

/** Element types this module reads and writes. */
export type SafetensorsDtype = "F32" | "F16" | "BF16" | "I32";

const BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2, I32: 4 };

/** One tensor: its stored dtype, shape and values (floats widened to float32). */
export interface SafetensorsTensor {
  /** The dtype it is stored as. */
  dtype: SafetensorsDtype;
  /** Shape, row-major. */
  shape: number[];
  /** Values: `Float32Array` for F32 / F16 / BF16, `Int32Array` for I32. */
  data: Float32Array | Int32Array;
}

/** A parsed safetensors file. */
export interface Safetensors {
  /** The header's `__metadata__` (empty when absent). */
  metadata: Record<string, string>;
  /** Tensors in header order. */
  tensors: Map<string, SafetensorsTensor>;
}

function fail(message: string, range = false): never {
  const text = `Cannot read safetensors: ${message}`;
  throw range ? new RangeError(text) : new TypeError(text);
}

/**
 * Parses safetensors bytes, decoding every tensor.
 *
 * @param bytes The whole file.
 * @returns The metadata and the tensors.
 * @throws {RangeError} truncated input: the header or a tensor's data runs past the end, or a
 *   tensor's byte range does not match its shape and dtype.
 * @throws {TypeError} a malformed header (not JSON, a field of the wrong type) or an unsupported
 *   dtype.
 *
 * @example Round trip
 * ```ts
 * import { parseSafetensors, writeSafetensors } from "./safetensors.ts";
 * const bytes = writeSafetensors({ w: { dtype: "F16", shape: [2], data: new Float32Array([1, -0.5]) } });
 * const { tensors } = parseSafetensors(bytes);
 * console.assert(tensors.get("w")!.data[1] === -0.5);
 * ```
 */
export function parseSafetensors(bytes: Uint8Array): Safetensors {
  if (bytes.length < 8) fail(`${bytes.length} bytes is too short for the 8-byte header length`, true);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(bytes.length - 8)) {
    fail(`header length ${headerLength} exceeds the ${bytes.length - 8} bytes after it`, true);
  }
  const n = Number(headerLength);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (cause) {
    fail(`the header is not UTF-8 JSON (${(cause as Error).message})`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    fail("the header is not a JSON object");
  }
  const dataStart = 8 + n, dataLength = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, SafetensorsTensor>();
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === "__metadata__") {
      if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
        fail("__metadata__ is not an object");
      }
      for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
        if (typeof v !== "string") fail(`__metadata__.${k} is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
    if (typeof e !== "object" || e === null) fail(`tensor "${name}" is not an object`);
    const { dtype, shape, data_offsets: offsets } = e;
    if (typeof dtype !== "string") fail(`tensor "${name}" has no dtype string`);
    if (!(dtype in BYTES)) {
      fail(`tensor "${name}" has dtype ${dtype} (supported: ${Object.keys(BYTES).join(", ")})`);
    }
    const isCount = (x: unknown) => Number.isSafeInteger(x) && (x as number) >= 0;
    if (!Array.isArray(shape) || !shape.every(isCount)) {
      fail(`tensor "${name}" has shape ${JSON.stringify(shape)}, not a list of non-negative integers`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
      fail(`tensor "${name}" has data_offsets ${JSON.stringify(offsets)}, not [begin, end]`);
    }
    const [begin, end] = offsets as [number, number];
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    const size = BYTES[dtype as SafetensorsDtype];
    if (end < begin || end - begin !== count * size) {
      fail(
        `tensor "${name}" has data_offsets [${begin}, ${end}] (${end - begin} bytes), but ${dtype} ${
          JSON.stringify(shape)
        } takes ${count * size}`,
        true,
      );
    }
    if (end > dataLength) {
      fail(
        `tensor "${name}" ends at byte ${end} of the data, which has only ${dataLength} (truncated)`,
        true,
      );
    }
    const raw = bytes.slice(dataStart + begin, dataStart + end); // a copy: aligned, owned
    tensors.set(name, {
      dtype: dtype as SafetensorsDtype,
      shape: shape as number[],
      data: decode(dtype, raw),
    });
  }
  return { metadata, tensors };
}

function decode(dtype: string, raw: Uint8Array): Float32Array | Int32Array {
  const dv = new DataView(raw.buffer);
  switch (dtype) {
    case "F32":
      return Float32Array.from({ length: raw.length / 4 }, (_, i) => dv.getFloat32(4 * i, true));
    case "I32":
      return Int32Array.from({ length: raw.length / 4 }, (_, i) => dv.getInt32(4 * i, true));
    case "F16":
      return Float32Array.from({ length: raw.length / 2 }, (_, i) => halfToFloat(dv.getUint16(2 * i, true)));
    default: { // BF16
      const out = new Float32Array(raw.length / 2), bits = new Uint32Array(out.buffer);
      for (let i = 0; i < out.length; i++) bits[i] = dv.getUint16(2 * i, true) << 16;
      return out;
    }
  }
}

/** A tensor to write: values are rounded to `dtype` (F16 / BF16 to nearest even). */
export interface SafetensorsInput {
  /** The dtype to store. */
  dtype: SafetensorsDtype;
  /** Shape; its product must equal `data.length`. */
  shape: number[];
  /** Values. */
  data: ArrayLike<number>;
}

/**
 * Writes tensors (in the given order) and optional string metadata as safetensors bytes.
 *
 * @param tensors Tensors by name.
 * @param metadata The header's `__metadata__`, if any.
 * @returns The file's bytes.
 * @throws {RangeError} a tensor whose data length is not its shape's product.
 *
 * @example
 * ```ts
 * import { writeSafetensors } from "./safetensors.ts";
 * const bytes = writeSafetensors({ ids: { dtype: "I32", shape: [3], data: [4, 5, 6] } }, { format: "pt" });
 * console.assert(bytes.length % 8 === 0);
 * ```
 */
export function writeSafetensors(
  tensors: Record<string, SafetensorsInput>,
  metadata?: Record<string, string>,
): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let at = 0;
  const chunks: Uint8Array[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) {
      throw new RangeError(
        `Cannot write safetensors: tensor "${name}" has ${t.data.length} values for shape [${t.shape}] (${count})`,
      );
    }
    const raw = new Uint8Array(count * BYTES[t.dtype]), dv = new DataView(raw.buffer);
    for (let i = 0; i < count; i++) {
      const x = t.data[i];
      if (t.dtype === "F32") dv.setFloat32(4 * i, x, true);
      else if (t.dtype === "I32") dv.setInt32(4 * i, x, true);
      else if (t.dtype === "F16") dv.setUint16(2 * i, floatToHalf(x), true);
      else dv.setUint16(2 * i, floatToBf16(x), true);
    }
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + raw.length] };
    chunks.push(raw);
    at += raw.length;
  }
  let json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded !== json.length) {
    const p = new Uint8Array(padded).fill(0x20);
    p.set(json);
    json = p;
  }
  const out = new Uint8Array(8 + json.length + at);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let pos = 8 + json.length;
  for (const c of chunks) (out.set(c, pos), (pos += c.length));
  return out;
}
