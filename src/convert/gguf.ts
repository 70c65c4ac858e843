/**
 * A GGUF (v2 / v3) reader: the header, the key/value metadata of every value type (arrays
 * included), the tensor infos, `general.alignment` and the data offset. Tensor data is not
 * copied; {@linkcode GgufTensorInfo.offset} says where each tensor's bytes start in the file.
 *
 * Layout (little-endian): magic `"GGUF"`, u32 version, u64 tensor count, u64 metadata count,
 * metadata (string key, u32 value type, value), tensor infos (string name, u32 n_dims, u64 dims,
 * u32 ggml type, u64 offset relative to the data section), padding to the alignment, data.
 *
 * @module
 */

import { ggmlTypeInfo } from "./ggml_types.ts";

/** A metadata value: numbers (64-bit integers as `bigint`), booleans, strings and arrays. */
export type GgufValue = number | bigint | boolean | string | GgufValue[];

/** Where one tensor lives in the file and what it holds. */
export interface GgufTensorInfo {
  /** Tensor name, e.g. `"blk.0.attn_q.weight"`. */
  name: string;
  /** Dimensions in ggml order: `dims[0]` is the fastest-varying (the row length). */
  dims: number[];
  /** ggml type id (0 = F32, 1 = F16, 3 = Q4_1, 8 = Q8_0, ...). */
  type: number;
  /** ggml type name, e.g. `"Q4_1"`. */
  typeName: string;
  /** Absolute byte offset of the tensor's data in the file. */
  offset: number;
  /** Bytes of data the tensor takes. */
  byteLength: number;
}

/** A parsed GGUF file (header and tensor directory; the data stays in the caller's bytes). */
export interface GgufFile {
  /** Format version (2 or 3). */
  version: number;
  /** Metadata in file order. */
  metadata: Map<string, GgufValue>;
  /** Tensor infos in file order. */
  tensors: GgufTensorInfo[];
  /** Absolute byte offset of the data section. */
  dataOffset: number;
  /** `general.alignment`, 32 when absent. */
  alignment: number;
  /** Length of the bytes that were parsed. */
  byteLength: number;
}

/**
 * The bytes are not a well-formed GGUF file: wrong magic, a truncated header or tensor data, a
 * bad value type, ... The message names the problem and the byte offset.
 *
 * @example
 * ```ts
 * import { InvalidGgufError, parseGguf } from "./gguf.ts";
 * import assert from "node:assert/strict";
 * assert.throws(() => parseGguf(new TextEncoder().encode("GGML....")), InvalidGgufError);
 * ```
 */
export class InvalidGgufError extends Error {
  /** Byte offset where the problem was found, when there is one. */
  readonly offset: number | undefined;

  /** Builds the error; `offset` is the byte offset the problem was found at. */
  constructor(message: string, offset?: number, options?: ErrorOptions) {
    super(offset === undefined ? message : `${message} (at byte ${offset})`, options);
    this.name = "InvalidGgufError";
    this.offset = offset;
  }
}

/**
 * The file is valid GGUF but holds something this converter does not handle: a tensor type,
 * an architecture, a format version. The message names it.
 *
 * @example
 * ```ts
 * import { UnsupportedGgufError } from "./gguf.ts";
 * const error = new UnsupportedGgufError('Architecture "mamba" is not supported');
 * console.assert(error.name === "UnsupportedGgufError");
 * ```
 */
export class UnsupportedGgufError extends Error {
  /** Builds the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UnsupportedGgufError";
  }
}

const MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const MAX_DIMS = 4;
const DEFAULT_ALIGNMENT = 32;
const VALUE_TYPE_NAMES = [
  "UINT8",
  "INT8",
  "UINT16",
  "INT16",
  "UINT32",
  "INT32",
  "FLOAT32",
  "BOOL",
  "STRING",
  "ARRAY",
  "UINT64",
  "INT64",
  "FLOAT64",
];
const FIXED_SIZES = [1, 1, 2, 2, 4, 4, 4, 1, -1, -1, 8, 8, 8];

class Reader {
  pos = 0;
  readonly view: DataView;
  readonly decoder = new TextDecoder("utf-8");

  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  need(n: number, what: string): void {
    if (this.pos + n > this.bytes.byteLength) {
      throw new InvalidGgufError(
        `Truncated GGUF: ${what} needs ${n} byte(s) but the file has ${
          this.bytes.byteLength - this.pos
        } left`,
        this.pos,
      );
    }
  }

  u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  u64(what: string): bigint {
    this.need(8, what);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** A u64 that must fit a JS number (a count, a size or an offset). */
  size(what: string): number {
    const at = this.pos;
    const v = this.u64(what);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidGgufError(`${what} ${v} is too large`, at);
    return Number(v);
  }

  string(what: string): string {
    const at = this.pos;
    const length = this.size(`length of ${what}`);
    if (length > this.bytes.byteLength - this.pos) {
      throw new InvalidGgufError(`Truncated GGUF: ${what} of ${length} bytes runs past the end`, at);
    }
    const text = this.decoder.decode(this.bytes.subarray(this.pos, this.pos + length));
    this.pos += length;
    return text;
  }

  value(type: number, what: string): GgufValue {
    const size = FIXED_SIZES[type];
    if (size > 0) this.need(size, what);
    const v = this.view;
    const p = this.pos;
    this.pos += size > 0 ? size : 0;
    switch (type) {
      case 0:
        return v.getUint8(p);
      case 1:
        return v.getInt8(p);
      case 2:
        return v.getUint16(p, true);
      case 3:
        return v.getInt16(p, true);
      case 4:
        return v.getUint32(p, true);
      case 5:
        return v.getInt32(p, true);
      case 6:
        return v.getFloat32(p, true);
      case 7: {
        const b = v.getUint8(p);
        if (b > 1) throw new InvalidGgufError(`${what}: BOOL byte ${b} is neither 0 nor 1`, p);
        return b === 1;
      }
      case 8:
        return this.string(what);
      case 9:
        return this.array(what);
      case 10:
        return v.getBigUint64(p, true);
      case 11:
        return v.getBigInt64(p, true);
      case 12:
        return v.getFloat64(p, true);
      default:
        throw new InvalidGgufError(`${what}: unknown value type ${type}`, p);
    }
  }

  array(what: string): GgufValue[] {
    const at = this.pos;
    const type = this.u32(`element type of ${what}`);
    if (type >= VALUE_TYPE_NAMES.length) {
      throw new InvalidGgufError(`${what}: unknown array element type ${type}`, at);
    }
    const count = this.size(`element count of ${what}`);
    // Every element takes at least one byte (strings at least eight), so a count larger than the
    // bytes left is a truncated or corrupt file; checking first avoids a huge allocation.
    const minSize = type === 8 ? 8 : type === 9 ? 12 : FIXED_SIZES[type];
    if (count * minSize > this.bytes.byteLength - this.pos) {
      throw new InvalidGgufError(
        `Truncated GGUF: ${what} claims ${count} ${
          VALUE_TYPE_NAMES[type]
        } elements, more than the file holds`,
        at,
      );
    }
    const out: GgufValue[] = new Array(count);
    for (let i = 0; i < count; i++) out[i] = this.value(type, what);
    return out;
  }
}

/**
 * Parses a GGUF v2 / v3 file held in `bytes`. Checks that every tensor's data lies inside
 * `bytes`, so a truncated download throws here rather than at conversion time.
 *
 * @throws {InvalidGgufError} wrong magic, truncated header or data, bad value type, ...
 * @throws {UnsupportedGgufError} a format version other than 2 or 3, or a ggml type id this
 * reader does not know (so it cannot size the tensor).
 *
 * @example
 * ```ts
 * import { parseGguf, InvalidGgufError } from "./gguf.ts";
 * import assert from "node:assert/strict";
 * assert.throws(() => parseGguf(new Uint8Array(3)), InvalidGgufError);
 * ```
 */
export function parseGguf(bytes: Uint8Array): GgufFile {
  const r = new Reader(bytes);
  const magic = r.u32("magic");
  if (magic !== MAGIC) {
    const seen = [...bytes.subarray(0, 4)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
    throw new InvalidGgufError(`Not a GGUF file: magic bytes are ${seen}, expected 47 47 55 46 ("GGUF")`, 0);
  }
  const version = r.u32("version");
  if (version !== 2 && version !== 3) {
    const hint = (version & 0xffff) === 0 ? " (a big-endian file?)" : "";
    throw new UnsupportedGgufError(`GGUF version ${version} is not supported (2 and 3 are)${hint}`);
  }
  const tensorCount = r.size("tensor count");
  const kvCount = r.size("metadata count");

  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const keyAt = r.pos;
    const key = r.string(`metadata key #${i}`);
    if (metadata.has(key)) throw new InvalidGgufError(`Duplicate metadata key "${key}"`, keyAt);
    const typeAt = r.pos;
    const type = r.u32(`value type of "${key}"`);
    if (type >= VALUE_TYPE_NAMES.length) {
      throw new InvalidGgufError(`Metadata "${key}" has unknown value type ${type}`, typeAt);
    }
    metadata.set(key, r.value(type, `metadata "${key}"`));
  }

  let alignment = DEFAULT_ALIGNMENT;
  const alignValue = metadata.get("general.alignment");
  if (alignValue !== undefined) {
    if (typeof alignValue !== "number" || alignValue <= 0 || (alignValue & (alignValue - 1)) !== 0) {
      throw new InvalidGgufError(`general.alignment must be a power of two, got ${String(alignValue)}`);
    }
    alignment = alignValue;
  }

  const infos: { name: string; dims: number[]; type: number; rel: number; at: number }[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const at = r.pos;
    const name = r.string(`tensor name #${i}`);
    if (names.has(name)) throw new InvalidGgufError(`Duplicate tensor "${name}"`, at);
    names.add(name);
    const nDimsAt = r.pos;
    const nDims = r.u32(`dimension count of tensor "${name}"`);
    if (nDims < 1 || nDims > MAX_DIMS) {
      throw new InvalidGgufError(
        `Tensor "${name}" has ${nDims} dimensions (1..${MAX_DIMS} allowed)`,
        nDimsAt,
      );
    }
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) dims.push(r.size(`dimension ${d} of tensor "${name}"`));
    const type = r.u32(`type of tensor "${name}"`);
    const relAt = r.pos;
    const rel = r.size(`offset of tensor "${name}"`);
    if (rel % alignment !== 0) {
      throw new InvalidGgufError(`Tensor "${name}" offset ${rel} is not a multiple of ${alignment}`, relAt);
    }
    infos.push({ name, dims, type, rel, at });
  }

  const dataOffset = Math.ceil(r.pos / alignment) * alignment;
  const tensors: GgufTensorInfo[] = infos.map(({ name, dims, type, rel, at }) => {
    const info = ggmlTypeInfo(type);
    if (!info) throw new UnsupportedGgufError(`Tensor "${name}" has unknown ggml type id ${type}`);
    const elements = dims.reduce((a, b) => a * b, 1);
    if (dims[0] % info.blockSize !== 0) {
      throw new InvalidGgufError(
        `Tensor "${name}" (${info.name}) row length ${
          dims[0]
        } is not a multiple of the block size ${info.blockSize}`,
        at,
      );
    }
    const byteLength = (elements / info.blockSize) * info.typeSize;
    const offset = dataOffset + rel;
    if (!Number.isSafeInteger(byteLength) || offset + byteLength > bytes.byteLength) {
      throw new InvalidGgufError(
        `Truncated GGUF: tensor "${name}" data [${offset}, ${
          offset + byteLength
        }) runs past the end of the ${bytes.byteLength}-byte file`,
        offset,
      );
    }
    return { name, dims, type, typeName: info.name, offset, byteLength };
  });

  return { version, metadata, tensors, dataOffset, alignment, byteLength: bytes.byteLength };
}

/**
 * Reads and parses the GGUF file at `path`.
 *
 * @throws {InvalidGgufError | UnsupportedGgufError} as {@linkcode parseGguf}; `Deno.errors.NotFound`
 * when the file does not exist.
 */
export async function readGgufFile(path: string): Promise<{ file: GgufFile; bytes: Uint8Array }> {
  const bytes = await Deno.readFile(path);
  return { file: parseGguf(bytes), bytes };
}

function required(file: GgufFile, key: string): GgufValue {
  const value = file.metadata.get(key);
  if (value === undefined) throw new InvalidGgufError(`GGUF metadata "${key}" is missing`);
  return value;
}

/**
 * The string metadata value `key`.
 *
 * @throws {InvalidGgufError} when it is missing or not a string.
 */
export function metadataString(file: GgufFile, key: string): string {
  const value = required(file, key);
  if (typeof value !== "string") {
    throw new InvalidGgufError(`GGUF metadata "${key}" should be a string, got ${typeof value}`);
  }
  return value;
}

/**
 * The numeric metadata value `key` (64-bit integers converted to `number` when exact). When the
 * key is missing, returns `fallback` if one is given.
 *
 * @throws {InvalidGgufError} when it is missing (and there is no fallback), not a number, or a
 * 64-bit integer beyond `Number.MAX_SAFE_INTEGER`.
 */
export function metadataNumber(file: GgufFile, key: string, fallback?: number): number {
  if (fallback !== undefined && !file.metadata.has(key)) return fallback;
  const value = required(file, key);
  if (typeof value === "number") return value;
  if (
    typeof value === "bigint" && value <= BigInt(Number.MAX_SAFE_INTEGER) &&
    value >= -BigInt(Number.MAX_SAFE_INTEGER)
  ) {
    return Number(value);
  }
  throw new InvalidGgufError(
    `GGUF metadata "${key}" should be a number, got ${typeof value} ${String(value)}`,
  );
}

/**
 * The array metadata value `key`.
 *
 * @throws {InvalidGgufError} when it is missing or not an array.
 */
export function metadataArray(file: GgufFile, key: string): GgufValue[] {
  const value = required(file, key);
  if (!Array.isArray(value)) throw new InvalidGgufError(`GGUF metadata "${key}" should be an array`);
  return value;
}

/**
 * The tensor named `name`, or `undefined`.
 */
export function findTensor(file: GgufFile, name: string): GgufTensorInfo | undefined {
  return file.tensors.find((t) => t.name === name);
}
