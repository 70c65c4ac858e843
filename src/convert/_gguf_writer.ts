// Test helper: a small GGUF v2/v3 writer (metadata of every value type, tensors quantized with
// ./_quantize.ts or given as raw bytes), for building test files. Not a public API.

import { ggmlTypeInfo } from "./ggml_types.ts";
import type { GgufValue } from "./gguf.ts";
import { quantize } from "./_quantize.ts";

/** GGUF metadata value type ids. */
export const ValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;

/** A value with an explicit GGUF type (for arrays: `type` is ARRAY and `elementType` is set). */
export class Typed {
  /** Wraps `value` as GGUF type `type`. */
  constructor(readonly type: number, readonly value: GgufValue, readonly elementType?: number) {}
}

/** A tensor to write: float data quantized to `type`, or raw bytes already in `type`'s layout. */
export interface WriterTensor {
  name: string;
  /** ggml order, dims[0] fastest. */
  dims: number[];
  type: number;
  data?: Float32Array;
  raw?: Uint8Array;
}

/** What {@linkcode writeGguf} writes. */
export interface WriterInput {
  metadata: [string, GgufValue | Typed][];
  tensors: WriterTensor[];
  version?: number;
  alignment?: number;
}

function inferType(v: GgufValue): number {
  if (typeof v === "string") return ValueType.STRING;
  if (typeof v === "boolean") return ValueType.BOOL;
  if (typeof v === "bigint") return v < 0n ? ValueType.INT64 : ValueType.UINT64;
  if (Array.isArray(v)) return ValueType.ARRAY;
  if (Number.isInteger(v)) return v < 0 ? ValueType.INT32 : ValueType.UINT32;
  return ValueType.FLOAT32;
}

class Sink {
  chunks: Uint8Array[] = [];
  length = 0;
  #enc = new TextEncoder();

  bytes(b: Uint8Array): void {
    this.chunks.push(b);
    this.length += b.length;
  }
  fixed(size: number, set: (v: DataView) => void): void {
    const b = new Uint8Array(size);
    set(new DataView(b.buffer));
    this.bytes(b);
  }
  u32(x: number): void {
    this.fixed(4, (v) => v.setUint32(0, x, true));
  }
  u64(x: number | bigint): void {
    this.fixed(8, (v) => v.setBigUint64(0, BigInt(x), true));
  }
  string(s: string): void {
    const b = this.#enc.encode(s);
    this.u64(b.length);
    this.bytes(b);
  }
  value(type: number, v: GgufValue, elementType?: number): void {
    switch (type) {
      case ValueType.UINT8:
        return this.fixed(1, (d) => d.setUint8(0, v as number));
      case ValueType.INT8:
        return this.fixed(1, (d) => d.setInt8(0, v as number));
      case ValueType.UINT16:
        return this.fixed(2, (d) => d.setUint16(0, v as number, true));
      case ValueType.INT16:
        return this.fixed(2, (d) => d.setInt16(0, v as number, true));
      case ValueType.UINT32:
        return this.fixed(4, (d) => d.setUint32(0, v as number, true));
      case ValueType.INT32:
        return this.fixed(4, (d) => d.setInt32(0, v as number, true));
      case ValueType.FLOAT32:
        return this.fixed(4, (d) => d.setFloat32(0, v as number, true));
      case ValueType.BOOL:
        return this.fixed(1, (d) => d.setUint8(0, v ? 1 : 0));
      case ValueType.STRING:
        return this.string(v as string);
      case ValueType.UINT64:
        return this.fixed(8, (d) => d.setBigUint64(0, BigInt(v as number), true));
      case ValueType.INT64:
        return this.fixed(8, (d) => d.setBigInt64(0, BigInt(v as number), true));
      case ValueType.FLOAT64:
        return this.fixed(8, (d) => d.setFloat64(0, v as number, true));
      case ValueType.ARRAY: {
        const list = v as GgufValue[];
        const et = elementType ?? (list.length ? inferType(list[0]) : ValueType.INT32);
        this.u32(et);
        this.u64(list.length);
        for (const item of list) this.value(et, item);
        return;
      }
      default:
        // deliberately writable: tests use it to produce a bad value type
        return this.u32(0);
    }
  }
  pad(alignment: number): void {
    const n = (alignment - (this.length % alignment)) % alignment;
    if (n) this.bytes(new Uint8Array(n));
  }
  concat(): Uint8Array {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const c of this.chunks) (out.set(c, at), (at += c.length));
    return out;
  }
}

/** Serialises a GGUF file (little-endian). */
export function writeGguf(input: WriterInput): Uint8Array {
  const alignment = input.alignment ?? 32;
  const metadata = [...input.metadata];
  if (alignment !== 32 && !metadata.some(([k]) => k === "general.alignment")) {
    metadata.push(["general.alignment", new Typed(ValueType.UINT32, alignment)]);
  }
  const datas = input.tensors.map((t) => {
    if (t.raw) return t.raw;
    const info = ggmlTypeInfo(t.type);
    if (!info || !t.data) throw new RangeError(`writeGguf: tensor ${t.name} needs data or raw bytes`);
    return quantize(t.data, t.type);
  });
  const s = new Sink();
  s.bytes(new TextEncoder().encode("GGUF"));
  s.u32(input.version ?? 3);
  s.u64(input.tensors.length);
  s.u64(metadata.length);
  for (const [key, v] of metadata) {
    s.string(key);
    const type = v instanceof Typed ? v.type : inferType(v);
    s.u32(type);
    s.value(type, v instanceof Typed ? v.value : v, v instanceof Typed ? v.elementType : undefined);
  }
  let offset = 0;
  for (let i = 0; i < input.tensors.length; i++) {
    const t = input.tensors[i];
    s.string(t.name);
    s.u32(t.dims.length);
    for (const d of t.dims) s.u64(d);
    s.u32(t.type);
    s.u64(offset);
    offset += Math.ceil(datas[i].length / alignment) * alignment;
  }
  s.pad(alignment);
  for (const d of datas) {
    s.bytes(d);
    s.pad(alignment);
  }
  return s.concat();
}
