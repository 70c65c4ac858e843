/**
 * Dequantizes ggml tensor data to `Float32Array`: F32, F16, BF16, Q8_0, Q4_0 and Q4_1, with the
 * block layouts of llama.cpp's `ggml-common.h`:
 *
 * - Q8_0: `{ f16 d; int8 qs[32] }`, x = d · q
 * - Q4_0: `{ f16 d; u8 qs[16] }`, x[j] = d · ((qs[j] & 15) − 8), x[j + 16] = d · ((qs[j] >> 4) − 8)
 * - Q4_1: `{ f16 d; f16 m; u8 qs[16] }`, x[j] = d · (qs[j] & 15) + m, x[j + 16] = d · (qs[j] >> 4) + m
 *
 * @module
 */

import { GgmlType } from "./ggml_types.ts";
import { type GgufTensorInfo, UnsupportedGgufError } from "./gguf.ts";

const HALF_TABLE: Float32Array = (() => {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    table[h] = e === 0
      ? sign * m * 2 ** -24
      : e === 31
      ? (m ? NaN : sign * Infinity)
      : sign * (1 + m / 1024) * 2 ** (e - 15);
  }
  return table;
})();

/**
 * The value of IEEE half-precision bits `h` (exact: every half is a float32).
 *
 * @example
 * ```ts
 * import { halfToFloat } from "./dequant.ts";
 * console.assert(halfToFloat(0x3c00) === 1 && halfToFloat(0xc000) === -2);
 * ```
 */
export function halfToFloat(h: number): number {
  return HALF_TABLE[h & 0xffff];
}

/** Whether {@linkcode dequantize} handles ggml type `type`. */
export function canDequantize(type: number): boolean {
  return (Object.values(GgmlType) as number[]).includes(type);
}

/**
 * Dequantizes one tensor whose data lies in `bytes` at `tensor.offset` (as
 * {@linkcode parseGguf} reports it). The result has `product(tensor.dims)` elements in ggml
 * order (`dims[0]` fastest), i.e. row-major `[dims[1], dims[0]]` for a matrix.
 *
 * @throws {UnsupportedGgufError} a tensor type other than F32, F16, BF16, Q8_0, Q4_0, Q4_1
 *   (the message names the type and the tensor).
 * @example
 * ```ts
 * import { dequantize } from "./dequant.ts";
 * const bytes = new Uint8Array(new Float32Array([1.5, -2]).buffer);
 * const out = dequantize(bytes, { name: "w", dims: [2], type: 0, typeName: "F32", offset: 0, byteLength: 8 });
 * console.assert(out[0] === 1.5 && out[1] === -2);
 * ```
 */
export function dequantize(bytes: Uint8Array, tensor: GgufTensorInfo): Float32Array {
  const n = tensor.dims.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const view = new DataView(bytes.buffer, bytes.byteOffset + tensor.offset, tensor.byteLength);
  const base = bytes.byteOffset + tensor.offset;
  switch (tensor.type) {
    case GgmlType.F32:
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
      return out;
    case GgmlType.F16:
      for (let i = 0; i < n; i++) out[i] = HALF_TABLE[view.getUint16(2 * i, true)];
      return out;
    case GgmlType.BF16: {
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = view.getUint16(2 * i, true) << 16;
      return out;
    }
    case GgmlType.Q8_0: {
      const q = new Int8Array(bytes.buffer, base, tensor.byteLength);
      for (let b = 0, p = 0; b < n / 32; b++, p += 34) {
        const d = HALF_TABLE[view.getUint16(p, true)];
        for (let j = 0; j < 32; j++) out[b * 32 + j] = d * q[p + 2 + j];
      }
      return out;
    }
    case GgmlType.Q4_0: {
      const q = bytes.subarray(tensor.offset, tensor.offset + tensor.byteLength);
      for (let b = 0, p = 0; b < n / 32; b++, p += 18) {
        const d = HALF_TABLE[view.getUint16(p, true)];
        for (let j = 0; j < 16; j++) {
          const byte = q[p + 2 + j];
          out[b * 32 + j] = d * ((byte & 15) - 8);
          out[b * 32 + j + 16] = d * ((byte >> 4) - 8);
        }
      }
      return out;
    }
    case GgmlType.Q4_1: {
      const q = bytes.subarray(tensor.offset, tensor.offset + tensor.byteLength);
      for (let b = 0, p = 0; b < n / 32; b++, p += 20) {
        const d = HALF_TABLE[view.getUint16(p, true)];
        const m = HALF_TABLE[view.getUint16(p + 2, true)];
        for (let j = 0; j < 16; j++) {
          const byte = q[p + 4 + j];
          out[b * 32 + j] = Math.fround(d * (byte & 15)) + m;
          out[b * 32 + j + 16] = Math.fround(d * (byte >> 4)) + m;
        }
      }
      return out;
    }
    default:
      throw new UnsupportedGgufError(
        `Cannot dequantize tensor "${tensor.name}": ggml type ${tensor.typeName} (id ${tensor.type}) is not supported (F32, F16, BF16, Q8_0, Q4_0, Q4_1 are)`,
      );
  }
}
