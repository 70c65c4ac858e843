/**
 * A minimal protobuf field reader (no schema): enough to walk an ONNX `ModelProto` without copying
 * it. Shared by ./_external_weights.ts and ./onnx_graph.ts. Not a public API.
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
