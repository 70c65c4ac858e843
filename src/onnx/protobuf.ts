/**
 * The protobuf wire format, without a schema: a field reader that walks a message in place (no
 * copy; enough to read an ONNX `ModelProto` of any size) and a writer for the small messages
 * (graph structure, tensor headers) this package encodes itself. ./schema.ts has the ONNX field
 * numbers both use.
 *
 * @module
 */

/** Protobuf wire types: varint, 64-bit, length-delimited, 32-bit. */
export const VARINT = 0, I64 = 1, LEN = 2, I32 = 5;

/** A protobuf field: its number, wire type, where its key starts, its payload, where it ends. */
export interface Field {
  /** Field number. */
  number: number;
  /** Wire type ({@linkcode VARINT}, {@linkcode I64}, {@linkcode LEN} or {@linkcode I32}). */
  wire: number;
  /** Offset of the field's key. */
  start: number;
  /** Offset of the payload (after the length, for {@linkcode LEN}). */
  payloadStart: number;
  /** Offset just past the field. */
  end: number;
}

// ---------------------------------------------------------------------------------------------
// Reading

/**
 * The unsigned varint at `bytes[at]` as a number (exact up to 2^53) and the offset after it.
 *
 * @throws {RangeError} the varint runs past the end or is longer than 10 bytes.
 */
export function readVarint(bytes: Uint8Array, at: number): [value: number, next: number] {
  let value = 0, scale = 1;
  for (let i = 0; i < 10; i++) {
    if (at >= bytes.length) throw new RangeError("a varint runs past the end of the message");
    const b = bytes[at++];
    value += (b & 0x7f) * scale;
    if ((b & 0x80) === 0) return [value, at];
    scale *= 128;
  }
  throw new RangeError("a varint is longer than 10 bytes");
}

/**
 * The varint at `bytes[at]` read as a two's-complement int64 (protobuf `int64`: -1 is ten bytes),
 * as a number, and the offset after it.
 *
 * @throws {RangeError} the varint runs past the end or is longer than 10 bytes.
 */
export function readInt64(bytes: Uint8Array, at: number): [value: number, next: number] {
  const [value, next] = readVarint(bytes, at);
  if (next - at < 9) return [value, next]; // < 2^56: exact as read
  let big = 0n;
  for (let i = next - 1; i >= at; i--) big = (big << 7n) | BigInt(bytes[i] & 0x7f);
  return [Number(BigInt.asIntN(64, big)), next];
}

/**
 * The fields of the message `bytes[start, end)`, in order.
 *
 * @throws {RangeError} a malformed message (a field running past `end`, an unknown wire type).
 */
export function fields(bytes: Uint8Array, start: number, end: number): Field[] {
  const out: Field[] = [];
  let at = start;
  while (at < end) {
    const fieldStart = at;
    const [key, afterKey] = readVarint(bytes, at);
    const number = Math.floor(key / 8), wire = key % 8;
    let payloadStart = afterKey, next: number;
    if (wire === VARINT) next = readVarint(bytes, afterKey)[1];
    else if (wire === I64) next = afterKey + 8;
    else if (wire === I32) next = afterKey + 4;
    else if (wire === LEN) {
      const [length, afterLength] = readVarint(bytes, afterKey);
      payloadStart = afterLength;
      next = afterLength + length;
    } else throw new RangeError(`wire type ${wire} (field ${number}) is not supported`);
    if (number === 0 || next > end) throw new RangeError(`field ${number} runs past the end of its message`);
    out.push({ number, wire, start: fieldStart, payloadStart, end: next });
    at = next;
  }
  return out;
}

const decoder = new TextDecoder();

/** A length-delimited field's payload as UTF-8 text. */
export function readString(bytes: Uint8Array, f: Field): string {
  return decoder.decode(bytes.subarray(f.payloadStart, f.end));
}

/** A varint field's value (unsigned). */
export function readVarintField(bytes: Uint8Array, f: Field): number {
  return readVarint(bytes, f.payloadStart)[0];
}

/** A repeated int64 field: packed (one LEN field) or not (one VARINT per entry). */
export function readInt64s(bytes: Uint8Array, list: Field[]): number[] {
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
export function readFloat32s(bytes: Uint8Array, list: Field[]): number[] {
  const out: number[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const f of list) {
    const n = f.wire === LEN ? (f.end - f.payloadStart) / 4 : f.wire === I32 ? 1 : 0;
    for (let i = 0; i < n; i++) out.push(view.getFloat32(f.payloadStart + 4 * i, true));
  }
  return out;
}

/** A repeated double field (packed or not). */
export function readFloat64s(bytes: Uint8Array, list: Field[]): number[] {
  const out: number[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const f of list) {
    const n = f.wire === LEN ? (f.end - f.payloadStart) / 8 : f.wire === I64 ? 1 : 0;
    for (let i = 0; i < n; i++) out.push(view.getFloat64(f.payloadStart + 8 * i, true));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writing

/** The unsigned varint encoding of `value` (a non-negative integer, exact up to 2^53). */
export function varint(value: number): number[] {
  const out: number[] = [];
  while (value >= 128) {
    out.push((value % 128) | 0x80);
    value = Math.floor(value / 128);
  }
  out.push(value);
  return out;
}

/** A field's key: `number << 3 | wire`, as a varint. */
export function fieldKey(number: number, wire: number): number[] {
  return varint(number * 8 + wire);
}

/**
 * A length-delimited field holding `parts` back to back, as parts (the payload is not copied: the
 * caller writes or concatenates the parts).
 */
export function lenField(number: number, parts: Uint8Array[]): Uint8Array[] {
  const length = parts.reduce((n, p) => n + p.length, 0);
  return [new Uint8Array([...fieldKey(number, LEN), ...varint(length)]), ...parts];
}

/** The parts joined into one array. */
export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

const encoder = new TextEncoder();

/**
 * Encodes one message, field by field in the order written (write them by ascending number, as
 * protobuf encoders do). Integers follow protobuf's `int64` / `int32` encoding: a negative value
 * is ten bytes of two's complement; a fraction is truncated toward zero.
 *
 * @example
 * ```ts
 * import { ProtoWriter } from "./protobuf.ts";
 * import assert from "node:assert/strict";
 * const w = new ProtoWriter();
 * w.int(1, 150);
 * w.message(2, (m) => m.string(1, "a"));
 * assert.deepEqual([...w.finish()], [0x08, 0x96, 0x01, 0x12, 0x03, 0x0a, 0x01, 0x61]);
 * ```
 */
export class ProtoWriter {
  #buf = new Uint8Array(64);
  #length = 0;
  #view = new DataView(this.#buf.buffer);

  #reserve(n: number): void {
    if (this.#length + n <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#length));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  /** Appends raw bytes. */
  raw(bytes: ArrayLike<number>): void {
    this.#reserve(bytes.length);
    this.#buf.set(bytes, this.#length);
    this.#length += bytes.length;
  }

  /** Appends a signed value as a varint (protobuf `int64` / `int32`). */
  #signed(value: number): void {
    const v = Math.trunc(value);
    if (v >= 0 && v <= Number.MAX_SAFE_INTEGER) {
      this.raw(varint(v));
      return;
    }
    let big = BigInt.asUintN(64, BigInt(v));
    const out: number[] = [];
    while (big >= 128n) {
      out.push(Number(big & 0x7fn) | 0x80);
      big >>= 7n;
    }
    out.push(Number(big));
    this.raw(out);
  }

  /** An integer field (`int64`, `int32` or an enum), as a varint. */
  int(number: number, value: number): void {
    this.raw(fieldKey(number, VARINT));
    this.#signed(value);
  }

  /** A `float` field (32-bit, little-endian). */
  float(number: number, value: number): void {
    this.raw(fieldKey(number, I32));
    this.#reserve(4);
    this.#view.setFloat32(this.#length, value, true);
    this.#length += 4;
  }

  /** A `bytes` field. */
  bytes(number: number, value: Uint8Array): void {
    this.raw(fieldKey(number, LEN));
    this.raw(varint(value.length));
    this.raw(value);
  }

  /** A `string` field (UTF-8). */
  string(number: number, value: string): void {
    this.bytes(number, encoder.encode(value));
  }

  /** A packed repeated integer field (`int64`); nothing for an empty list. */
  packedInts(number: number, values: readonly number[]): void {
    if (values.length === 0) return;
    const inner = new ProtoWriter();
    for (const v of values) inner.#signed(v);
    this.bytes(number, inner.finish());
  }

  /** A packed repeated `float` field; nothing for an empty list. */
  packedFloats(number: number, values: readonly number[]): void {
    if (values.length === 0) return;
    const data = new Uint8Array(4 * values.length);
    const view = new DataView(data.buffer);
    values.forEach((v, i) => view.setFloat32(4 * i, v, true));
    this.bytes(number, data);
  }

  /** A nested message field, written by `write`. */
  message(number: number, write: (w: ProtoWriter) => void): void {
    const inner = new ProtoWriter();
    write(inner);
    this.bytes(number, inner.finish());
  }

  /** The bytes written so far (a copy). */
  finish(): Uint8Array {
    return this.#buf.slice(0, this.#length);
  }
}
