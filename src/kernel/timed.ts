/**
 * A kernel that times its own warps and draws, for profiling the decode loop.
 *
 * @module
 */

import type { Kernel, Probs, WarpOptions } from "./types.ts";

/**
 * A {@linkcode Kernel} that delegates to another and adds the wall time of every `warp` and
 * `sample` call to {@linkcode TimedKernel.warpMs} / {@linkcode TimedKernel.sampleMs}. The decoders
 * read these counters (where the kernel has them) into `DecodeStats.warpMs`, `sampleMs`,
 * `draftWarpMs` and `draftSampleMs`; other kernels leave those NaN. Adds two `performance.now()`
 * calls per warp or draw.
 *
 * @example Count the time of one warp
 * ```ts
 * import { TimedKernel } from "./timed.ts";
 * import { referenceKernel } from "./reference.ts";
 * import assert from "node:assert/strict";
 * const kernel = new TimedKernel(referenceKernel);
 * kernel.warp(new Float32Array([0, 1, 2]));
 * assert.ok(kernel.warpMs >= 0 && kernel.warpCalls === 1);
 * ```
 */
export class TimedKernel implements Kernel {
  /** The wrapped kernel. */
  readonly inner: Kernel;
  /** Time in `warp`, ms. */
  warpMs = 0;
  /** `warp` calls. */
  warpCalls = 0;
  /** Time in `sample`, ms. */
  sampleMs = 0;

  /** Wraps `inner`. */
  constructor(inner: Kernel) {
    this.inner = inner;
  }

  /** The wrapped kernel's name. */
  get name(): "wasm" | "reference" {
    return this.inner.name;
  }

  /** {@linkcode Kernel.warp}, timed. */
  warp(logits: Float32Array, options?: WarpOptions): Probs {
    const start = performance.now();
    try {
      return this.inner.warp(logits, options);
    } finally {
      this.warpMs += performance.now() - start;
      this.warpCalls++;
    }
  }

  /** {@linkcode Kernel.sample}, timed. */
  sample(probs: Probs, uniforms: ArrayLike<number>, withoutReplacement?: boolean): Int32Array {
    const start = performance.now();
    try {
      return this.inner.sample(probs, uniforms, withoutReplacement);
    } finally {
      this.sampleMs += performance.now() - start;
    }
  }

  /** {@linkcode Kernel.solveRho}. */
  solveRho(...args: Parameters<Kernel["solveRho"]>): ReturnType<Kernel["solveRho"]> {
    return this.inner.solveRho(...args);
  }

  /** {@linkcode Kernel.residual}. */
  residual(...args: Parameters<Kernel["residual"]>): ReturnType<Kernel["residual"]> {
    return this.inner.residual(...args);
  }

  /** {@linkcode Kernel.kseqSelect}. */
  kseqSelect(...args: Parameters<Kernel["kseqSelect"]>): ReturnType<Kernel["kseqSelect"]> {
    return this.inner.kseqSelect(...args);
  }

  /** {@linkcode Kernel.specInferSelect}. */
  specInferSelect(...args: Parameters<Kernel["specInferSelect"]>): ReturnType<Kernel["specInferSelect"]> {
    return this.inner.specInferSelect(...args);
  }
}
