// Test helpers: ggml quantizers (the reference `quantize_row_*_ref` of llama.cpp's ggml-quants.c)
// and float → half / bfloat16 rounding, used by the GGUF writer to build test files.

import { GgmlType } from "./ggml_types.ts";

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);

/** Float → IEEE half bits, round to nearest even (overflow → ±Infinity). */
export function floatToHalf(x: number): number {
  F32[0] = x;
  const bits = U32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let h = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && (h & 1))) h++;
    return sign | h;
  }
  let h = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) {
    h++;
    if (h === 0x400) {
      h = 0;
      e++;
      if (e >= 31) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | h;
}

/** Float → bfloat16 bits, round to nearest even. */
export function floatToBf16(x: number): number {
  F32[0] = x;
  const bits = U32[0];
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Quantizes `x` (length a multiple of 32 for block types) to ggml `type`'s bytes. */
export function quantize(x: Float32Array, type: number): Uint8Array {
  switch (type) {
    case GgmlType.F32:
      return new Uint8Array(x.slice().buffer);
    case GgmlType.F16:
    case GgmlType.BF16: {
      const out = new Uint16Array(x.length);
      for (let i = 0; i < x.length; i++) {
        out[i] = type === GgmlType.F16 ? floatToHalf(x[i]) : floatToBf16(x[i]);
      }
      return new Uint8Array(out.buffer);
    }
    case GgmlType.Q8_0:
      return blocks(x, 34, (v, out, view) => {
        let amax = 0;
        for (const a of v) amax = Math.max(amax, Math.abs(a));
        const d = Math.fround(amax / 127);
        const id = d ? Math.fround(1 / d) : 0;
        view.setUint16(0, floatToHalf(d), true);
        for (let j = 0; j < 32; j++) out[2 + j] = Math.round(Math.fround(v[j] * id)) & 0xff;
      });
    case GgmlType.Q4_0:
      return blocks(x, 18, (v, out, view) => {
        let amax = 0, max = 0;
        for (const a of v) if (amax < Math.abs(a)) (amax = Math.abs(a)), (max = a);
        const d = Math.fround(max / -8);
        const id = d ? Math.fround(1 / d) : 0;
        view.setUint16(0, floatToHalf(d), true);
        for (let j = 0; j < 16; j++) {
          const lo = Math.min(15, Math.trunc(Math.fround(v[j] * id) + 8.5));
          const hi = Math.min(15, Math.trunc(Math.fround(v[j + 16] * id) + 8.5));
          out[2 + j] = lo | (hi << 4);
        }
      });
    case GgmlType.Q4_1:
      return blocks(x, 20, (v, out, view) => {
        let min = Infinity, max = -Infinity;
        for (const a of v) (min = Math.min(min, a)), (max = Math.max(max, a));
        const d = Math.fround((max - min) / 15);
        const id = d ? Math.fround(1 / d) : 0;
        view.setUint16(0, floatToHalf(d), true);
        view.setUint16(2, floatToHalf(min), true);
        for (let j = 0; j < 16; j++) {
          const lo = Math.min(15, Math.trunc(Math.fround((v[j] - min) * id) + 0.5));
          const hi = Math.min(15, Math.trunc(Math.fround((v[j + 16] - min) * id) + 0.5));
          out[4 + j] = lo | (hi << 4);
        }
      });
    default:
      throw new RangeError(`quantize: ggml type ${type} is not implemented in the test writer`);
  }
}

function blocks(
  x: Float32Array,
  size: number,
  one: (v: Float32Array, out: Uint8Array, view: DataView) => void,
): Uint8Array {
  if (x.length % 32 !== 0) throw new RangeError(`quantize: ${x.length} values are not whole 32-blocks`);
  const out = new Uint8Array((x.length / 32) * size);
  for (let b = 0; b < x.length / 32; b++) {
    const block = out.subarray(b * size, (b + 1) * size);
    one(x.subarray(b * 32, b * 32 + 32), block, new DataView(out.buffer, b * size, size));
  }
  return out;
}
