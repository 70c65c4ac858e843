/**
 * Kernel entry points for the kernel bench (`bench/micro/kernel_bench.ts`) and the differential tests
 * only, kept off the public {@linkcode Kernel} interface: no verifier calls them, and `mod.ts` /
 * `decode.ts` do not export this module.
 *
 * - `kseqStep`: one full K-SEQ step from logits (warp both rows, solve ρ*, select) in one call,
 *   on both kernels: {@linkcode referenceInternals} here, `WasmKernel.kseqStep` in `wasm.ts`.
 * - The speed floor (one max pass and one Σ exp pass per row) exists on the WASM kernel only:
 *   `WasmKernel.floor`.
 *
 * @module
 */

import { kseqStepReference, referenceKernel } from "./reference.ts";
import type { Kernel, RhoSolution, Selection, WarpOptions } from "./types.ts";

/** A {@linkcode Kernel} with the bench's and tests' one-call K-SEQ step. */
export interface KernelInternals extends Kernel {
  /**
   * Warp both logit rows, solve ρ*, select (residual draw included): one full K-SEQ step in one
   * call, as `kseqSelect(warp(targetLogits), warp(draftLogits), candidates, uniforms)`.
   */
  kseqStep(
    targetLogits: Float32Array,
    draftLogits: Float32Array,
    options: WarpOptions,
    candidates: ArrayLike<number>,
    uniforms: ArrayLike<number>,
  ): Selection & RhoSolution;
}

/**
 * The reference kernel with {@linkcode kseqStepReference} as its `kseqStep`: the oracle the WASM
 * kernel's internals are compared with.
 *
 * @example
 * ```ts
 * import { referenceInternals } from "./internals.ts";
 * import assert from "node:assert/strict";
 * const t = new Float32Array([3, 1, 0]), d = new Float32Array([1, 3, 0]);
 * assert.equal(referenceInternals.kseqStep(t, d, {}, [1, 1], [0.9, 0.9, 0.1]).draftIndex, -1);
 * ```
 */
export const referenceInternals: KernelInternals = { ...referenceKernel, kseqStep: kseqStepReference };
