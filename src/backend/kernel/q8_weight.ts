/**
 * The 8-bit block-quantized weight the `kernel` backend multiplies with (`spectr_lm_linear_q8` in
 * `wasm/src/lm.rs`): onnxruntime's `MatMulNBits` with `bits: 8`, `block_size: 32`, kept in its own
 * output-major layout, codes as stored (unsigned, zero point 128): the backend re-centres them while
 * copying them into its memory, so mapping a file needs no copy of its codes.
 *
 * @module
 */

/** Weights per quantization block. */
export const Q8_BLOCK = 32;

/**
 * A `[k, n]` linear weight (y = x · W) quantized per block of 32 inputs of each output:
 * `W[i, j] = scales[j·k/32 + b] · (codes[j·k + i] − 128) + (mins?.[j·k/32 + b] ?? 0)` with
 * `b = ⌊i / 32⌋`: `codes` are MatMulNBits' unsigned 8-bit codes with its default zero point 128
 * (graphs with explicit `zero_points` are not read into this form). An embedding stored this way
 * has one output per token (`n` = vocabulary, `k` = hidden size).
 */
export interface Q8Weight {
  /** Marks the quantized form (a plain weight is a Float32Array). */
  readonly kind: "q8";
  /** Inputs (a multiple of 32). */
  readonly k: number;
  /** Outputs. */
  readonly n: number;
  /** `[n, k]` unsigned codes (zero point 128); may be a view into the model file. */
  readonly codes: Uint8Array;
  /** `[n, k / 32]` block scales. */
  readonly scales: Float32Array;
  /** `[n, k / 32]` block offsets (a GGUF `Q4_1`-style minimum), when the weight has them. */
  readonly mins?: Float32Array;
}

/** A linear weight: `[k, n]` float32, or 8-bit blocks. */
export type LinearWeight = Float32Array | Q8Weight;

/**
 * Whether a weight is the quantized form.
 *
 * @example
 * ```ts
 * import { isQ8 } from "./q8_weight.ts";
 * console.assert(!isQ8(new Float32Array(4)));
 * ```
 */
export function isQ8(w: LinearWeight | undefined): w is Q8Weight {
  return w !== undefined && !(w instanceof Float32Array) && w.kind === "q8";
}

/**
 * Row `j` of a quantized weight dequantized (an embedding lookup: row j = token j's vector).
 *
 * @param w The weight.
 * @param j The output (token) index, in [0, n).
 * @param out `k` floats to fill.
 * @example
 * ```ts
 * import { dequantizeRow, type Q8Weight } from "./q8_weight.ts";
 * const w: Q8Weight = { kind: "q8", k: 32, n: 1, codes: new Uint8Array(32).fill(130), scales: new Float32Array([0.5]) };
 * const out = new Float32Array(32);
 * dequantizeRow(w, 0, out);
 * console.assert(out[0] === 1);
 * ```
 */
export function dequantizeRow(w: Q8Weight, j: number, out: Float32Array): void {
  const blocks = w.k / Q8_BLOCK;
  for (let b = 0; b < blocks; b++) {
    const s = w.scales[j * blocks + b], m = w.mins?.[j * blocks + b] ?? 0;
    for (let i = 0; i < Q8_BLOCK; i++) {
      out[b * Q8_BLOCK + i] = s * (w.codes[j * w.k + b * Q8_BLOCK + i] - 128) + m;
    }
  }
}

/**
 * Re-centres 8-bit codes stored with zero point 128 into the kernel's int8 (code − 128), from `src`
 * into `dst` (the same array for in place).
 *
 * @example
 * ```ts
 * import { recentreCodes } from "./q8_weight.ts";
 * const c = Uint8Array.of(0, 128, 255);
 * recentreCodes(c, c);
 * console.assert(new Int8Array(c.buffer).join() === "-128,0,127");
 * ```
 */
export function recentreCodes(src: Uint8Array, dst: Uint8Array): void {
  for (let i = 0; i < src.length; i++) dst[i] = src[i] ^ 0x80;
}
