/**
 * ggml block-quantized matrices as com.microsoft `MatMulNBits` weights, without re-quantising.
 *
 * `MatMulNBits` computes `Y = A · dequant(B)ᵀ` with B `uint8 [N, n_blocks, blob_size]` (codes
 * packed low nibble first along K), `scales [N · n_blocks]` and optional `zero_points`, each
 * weight being `(code − zero_point) · scale`; zero points are either packed uint8 (default
 * 2^(bits−1)) or floats of A's type `[N · n_blocks]`.
 *
 * - Q4_0 `x = d · (q − 8)`: codes as they are, scale d, default zero point 8. Exact.
 * - Q4_1 `x = d · q + m`, two ways ({@linkcode Q4_1Mode}):
 *   - "split" (the default of the converter): codes as they are, scale d, packed uint8 zero
 *     point 0, and the minimums as a separate `[K / 32, N]` matrix the graph multiplies with
 *     A's per-block sums. Bit-exact weights; onnxruntime keeps its prepacked 4-bit kernel.
 *   - "float": float zero point −m / d (a block with d = 0 holds m everywhere: codes 0, scale m,
 *     zero point −1). Exact up to float32 rounding, but onnxruntime's CPU kernel then takes its
 *     unpacked path (dequantizes B on every call), several times slower.
 * - Q8_0 `x = d · q`: 8-bit codes q + 128, scale d, default zero point 128. Exact.
 *
 * ggml stores a Q4 block's elements 0..15 in the low nibbles and 16..31 in the high ones;
 * MatMulNBits wants elements 2i and 2i + 1 in byte i, so nibbles are reshuffled.
 *
 * The "q8" precision ({@linkcode toNBits8}) writes every block type as 8-bit codes (one byte per
 * element, default zero point 128, no zero-point input): Q8_0 as above; Q4_0 as q + 120
 * (`d · (q − 8) = d · ((q + 120) − 128)`); Q4_1 as q + z + 128 with z = round(m / d), so that
 * the codes sit on the weights (what an int8 activation kernel multiplies), and the residual
 * minimum m − z·d split out as in "split" mode. All bit-exact.
 *
 * @module
 */

import { halfToFloat } from "./dequant.ts";
import { GgmlType } from "./ggml_types.ts";
import type { GgufTensorInfo } from "./gguf.ts";

/** One `MatMulNBits` weight: B, scales, optional zero points, and its attributes. */
export interface NBitsWeight {
  /** Output features (rows of the ggml matrix). */
  n: number;
  /** Input features (the row length). */
  k: number;
  /** Bits per code (8 for Q8_0). */
  bits: 4 | 8;
  /** Elements per block. */
  blockSize: 32;
  /** `[N, k / 32, 32 · bits / 8]`. */
  b: Uint8Array;
  /** `[N · k / 32]`. */
  scales: Float32Array;
  /**
   * Zero points: float `[N · k / 32]` (Q4_1, "float" mode), packed uint8 zeros (Q4_1, "split"
   * mode), or undefined for the default 2^(bits−1).
   */
  zeroPoints?: Float32Array | Uint8Array;
  /** "split" mode: the Q4_1 block minimums, `[k / 32, N]` (MatMul layout), added as A's block sums · mins. */
  mins?: Float32Array;
}

/**
 * How Q4_1's minimum m is carried: "float" as a float zero point −m / d (one op; onnxruntime's
 * CPU kernel then dequantizes B on every call), or "split" as zero point 0 plus a separate
 * `blocksum(A) · mins` term (MatMulNBits keeps its packed fast path).
 */
export type Q4_1Mode = "float" | "split";

/** Whether {@linkcode toNBits} maps ggml type `type` exactly. */
export function nbitsCompatible(type: number): boolean {
  return type === GgmlType.Q4_0 || type === GgmlType.Q4_1 || type === GgmlType.Q8_0;
}

/**
 * Converts the ggml matrix `tensor` (dims `[K, N]`, data in `bytes`) to a MatMulNBits weight,
 * taking its rows in `rowOrder` (output row r is ggml row `rowOrder[r]`; identity when absent).
 *
 * @throws {RangeError} a type {@linkcode nbitsCompatible} rejects.
 */
export function toNBits(
  bytes: Uint8Array,
  tensor: GgufTensorInfo,
  rowOrder?: Int32Array,
  mode: Q4_1Mode = "float",
): NBitsWeight {
  const [k, n] = tensor.dims;
  const blocks = k / 32;
  const view = new DataView(bytes.buffer, bytes.byteOffset + tensor.offset, tensor.byteLength);
  const src = bytes.subarray(tensor.offset, tensor.offset + tensor.byteLength);
  const scales = new Float32Array(n * blocks);
  if (tensor.type === GgmlType.Q8_0) {
    const b = new Uint8Array(n * blocks * 32);
    for (let r = 0; r < n; r++) {
      const row = rowOrder ? rowOrder[r] : r;
      for (let blk = 0; blk < blocks; blk++) {
        const p = (row * blocks + blk) * 34, o = (r * blocks + blk) * 32;
        scales[r * blocks + blk] = halfToFloat(view.getUint16(p, true));
        for (let j = 0; j < 32; j++) b[o + j] = (src[p + 2 + j] + 128) & 0xff; // int8 → q + 128
      }
    }
    return { n, k, bits: 8, blockSize: 32, b, scales };
  }
  const q41 = tensor.type === GgmlType.Q4_1;
  if (!q41 && tensor.type !== GgmlType.Q4_0) {
    throw new RangeError(
      `toNBits: ${tensor.name} is ${tensor.typeName}; only Q4_0, Q4_1 and Q8_0 map exactly`,
    );
  }
  const size = q41 ? 20 : 18, codes = q41 ? 4 : 2;
  const b = new Uint8Array(n * blocks * 16);
  const split = q41 && mode === "split";
  const zeroPoints = q41 && !split ? new Float32Array(n * blocks) : undefined;
  const mins = split ? new Float32Array(blocks * n) : undefined;
  for (let r = 0; r < n; r++) {
    const row = rowOrder ? rowOrder[r] : r;
    for (let blk = 0; blk < blocks; blk++) {
      const p = (row * blocks + blk) * size, o = (r * blocks + blk) * 16, s = r * blocks + blk;
      const d = halfToFloat(view.getUint16(p, true));
      scales[s] = d;
      if (mins) mins[blk * n + r] = halfToFloat(view.getUint16(p + 2, true));
      if (zeroPoints) {
        const m = halfToFloat(view.getUint16(p + 2, true));
        if (d === 0) {
          scales[s] = m;
          zeroPoints[s] = -1;
          continue; // codes stay 0: (0 − (−1)) · m = m
        }
        zeroPoints[s] = -m / d;
      }
      for (let i = 0; i < 16; i++) {
        // element e is the low nibble of src byte e (e < 16) or the high nibble of byte e − 16
        const e0 = 2 * i, e1 = 2 * i + 1;
        const c0 = e0 < 16 ? src[p + codes + e0] & 15 : src[p + codes + e0 - 16] >> 4;
        const c1 = e1 < 16 ? src[p + codes + e1] & 15 : src[p + codes + e1 - 16] >> 4;
        b[o + i] = c0 | (c1 << 4);
      }
    }
  }
  if (split) {
    return {
      n,
      k,
      bits: 4,
      blockSize: 32,
      b,
      scales,
      zeroPoints: new Uint8Array(n * Math.ceil(blocks / 2)),
      mins,
    };
  }
  return { n, k, bits: 4, blockSize: 32, b, scales, zeroPoints };
}

/**
 * Converts the ggml matrix `tensor` (Q8_0, Q4_0 or Q4_1) to an 8-bit MatMulNBits weight with the
 * default zero point 128 (no zero-point input): codes q + 128 (Q8_0), q + 120 (Q4_0) or
 * q + z + 128 (Q4_1, z = round(m / d) clamped to the 8-bit range; z = 0 when d = 0 or when
 * m − z·d is not a float32), the block scales as they are, and for Q4_1 the residual minimums
 * m − z·d as `mins` (`[k / 32, N]`, the "split" term). Bit-exact: `(code − 128) · d (+ mins)` is
 * ggml's own dequantization.
 *
 * @throws {RangeError} a type {@linkcode nbitsCompatible} rejects.
 */
export function toNBits8(bytes: Uint8Array, tensor: GgufTensorInfo, rowOrder?: Int32Array): NBitsWeight {
  if (tensor.type === GgmlType.Q8_0) return toNBits(bytes, tensor, rowOrder);
  const q41 = tensor.type === GgmlType.Q4_1;
  if (!q41 && tensor.type !== GgmlType.Q4_0) {
    throw new RangeError(
      `toNBits8: ${tensor.name} is ${tensor.typeName}; only Q4_0, Q4_1 and Q8_0 map exactly`,
    );
  }
  const [k, n] = tensor.dims;
  const blocks = k / 32, size = q41 ? 20 : 18, codes = q41 ? 4 : 2, offset = q41 ? 128 : 120;
  const view = new DataView(bytes.buffer, bytes.byteOffset + tensor.offset, tensor.byteLength);
  const src = bytes.subarray(tensor.offset, tensor.offset + tensor.byteLength);
  const scales = new Float32Array(n * blocks);
  const mins = q41 ? new Float32Array(blocks * n) : undefined;
  const b = new Uint8Array(n * blocks * 32);
  for (let r = 0; r < n; r++) {
    const row = rowOrder ? rowOrder[r] : r;
    for (let blk = 0; blk < blocks; blk++) {
      const p = (row * blocks + blk) * size, o = (r * blocks + blk) * 32;
      const d = halfToFloat(view.getUint16(p, true));
      scales[r * blocks + blk] = d;
      let shift = offset;
      if (mins) {
        // x = d·q + m = d·((q + z + 128) − 128) + (m − z·d): z = round(m / d) centres the codes on
        // the weights (what an int8 activation path multiplies), kept only when m − z·d is exact
        const m = halfToFloat(view.getUint16(p + 2, true));
        const z = d === 0 ? 0 : Math.max(-128, Math.min(112, Math.round(m / d)));
        const rest = m - z * d; // exact in float64: m and z·d are (11 + 8)-bit numbers
        const exact = Math.fround(rest) === rest;
        mins[blk * n + r] = exact ? rest : m;
        shift += exact ? z : 0;
      }
      for (let j = 0; j < 16; j++) {
        const byte = src[p + codes + j];
        b[o + j] = (byte & 15) + shift;
        b[o + j + 16] = (byte >> 4) + shift;
      }
    }
  }
  return { n, k, bits: 8, blockSize: 32, b, scales, mins };
}

/**
 * Concatenates MatMulNBits weights with the same K, bits and zero-point kind along N (fused
 * projections).
 */
export function concatNBits(parts: NBitsWeight[]): NBitsWeight {
  if (parts.length === 1) return parts[0];
  const [first] = parts;
  const kind = (p: NBitsWeight) => `${p.k} ${p.bits} ${p.zeroPoints?.constructor.name} ${!p.mins}`;
  if (parts.some((p) => kind(p) !== kind(first))) {
    throw new RangeError("concatNBits: parts differ in K, bits or zero-point kind");
  }
  const cat = <T extends Uint8Array | Float32Array>(xs: T[], make: (n: number) => T): T => {
    const out = make(xs.reduce((a, x) => a + x.length, 0));
    let at = 0;
    for (const x of xs) (out.set(x, at), (at += x.length));
    return out;
  };
  return {
    n: parts.reduce((a, p) => a + p.n, 0),
    k: first.k,
    bits: first.bits,
    blockSize: 32,
    b: cat(parts.map((p) => p.b), (n) => new Uint8Array(n)),
    scales: cat(parts.map((p) => p.scales), (n) => new Float32Array(n)),
    zeroPoints: first.zeroPoints instanceof Float32Array
      ? cat(parts.map((p) => p.zeroPoints as Float32Array), (n) => new Float32Array(n))
      : first.zeroPoints
      ? cat(parts.map((p) => p.zeroPoints as Uint8Array), (n) => new Uint8Array(n))
      : undefined,
    mins: first.mins ? interleaveColumns(parts.map((p) => [p.mins!, p.n] as const), first.k / 32) : undefined,
  };
}

/** Joins `[rows, n_i]` matrices side by side into `[rows, Σ n_i]`. */
function interleaveColumns(parts: (readonly [Float32Array, number])[], rows: number): Float32Array {
  const total = parts.reduce((a, [, n]) => a + n, 0);
  const out = new Float32Array(rows * total);
  let col = 0;
  for (const [m, n] of parts) {
    for (let r = 0; r < rows; r++) out.set(m.subarray(r * n, (r + 1) * n), r * total + col);
    col += n;
  }
  return out;
}
