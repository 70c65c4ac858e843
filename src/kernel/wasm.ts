/**
 * The WebAssembly SIMD kernel: {@linkcode WasmKernel} implements {@linkcode Kernel} on top of the
 * dependency-free module `spectr_kernel.wasm` (built from `wasm/` by `tools/build_wasm.sh`; no
 * imports, C ABI, see `wasm/README.md`). It makes the same decisions as the float64 reference
 * (`reference.ts`) given the same uniforms, and is one to two orders of magnitude faster on
 * LM-sized vocabularies: warp in f32 SIMD with a vectorised exp, exact ρ* by an O(V) selection
 * search instead of a sort, residual draws over block sums.
 *
 * Rows live in WASM memory as f32; Float64Array inputs are rounded to f32 on the copy in, so a
 * finite f64 probability outside the f32 range (> 3.4e38, or so small that every entry rounds to
 * 0) is rejected although the reference would accept it.
 *
 * @module
 */

import { referenceKernel } from "./reference.ts";
import type { Kernel, Probs, RhoSolution, Selection, WarpOptions } from "./types.ts";
import {
  checkCandidates,
  checkK,
  checkLogits,
  checkPair,
  checkProbs,
  checkUniforms,
  resolveWarp,
} from "./validate.ts";

/** Options of {@linkcode loadKernel}. */
export interface LoadKernelOptions {
  /**
   * The module: its bytes (for runtimes without a file system), or a URL / URL string to fetch.
   * @default {new URL("./spectr_kernel.wasm", import.meta.url)}
   */
  wasm?: BufferSource | URL | string;
  /**
   * Where the module does not validate (WebAssembly SIMD missing), return the reference kernel
   * with a `console.warn` instead of throwing.
   * @default {true}
   */
  fallback?: boolean;
}

interface Exports {
  memory: WebAssembly.Memory;
  spectr_heap_base(): number;
  spectr_scratch_bytes(n: number, count: number): number;
  spectr_warp(
    logits: number,
    n: number,
    dst: number,
    t: number,
    topK: number,
    topP: number,
    scratch: number,
    out: number,
  ): number;
  spectr_solve_rho(p: number, q: number, n: number, k: number, scratch: number, out: number): number;
  spectr_residual(
    p: number,
    q: number,
    n: number,
    k: number,
    rho: number,
    beta: number,
    dst: number,
    out: number,
  ): number;
  spectr_kseq_select(
    p: number,
    q: number,
    n: number,
    candidates: number,
    k: number,
    uniforms: number,
    hasSolution: number,
    rho: number,
    beta: number,
    scratch: number,
    out: number,
  ): number;
  spectr_kseq_step(
    logitsP: number,
    logitsQ: number,
    n: number,
    pOut: number,
    qOut: number,
    t: number,
    topK: number,
    topP: number,
    candidates: number,
    k: number,
    uniforms: number,
    scratch: number,
    out: number,
  ): number;
  spectr_specinfer_select(
    p: number,
    q: number,
    n: number,
    candidates: number,
    k: number,
    uniforms: number,
    withoutReplacement: number,
    scratch: number,
    out: number,
  ): number;
  spectr_sample(
    probs: number,
    n: number,
    uniforms: number,
    count: number,
    withoutReplacement: number,
    ids: number,
    scratch: number,
    out: number,
  ): number;
  spectr_floor(a: number, b: number, n: number, out: number): number;
}

/** Slots of the `out` f64 array every export writes. */
const OUT_RHO = 0,
  OUT_BETA = 1,
  OUT_ACCEPTANCE = 2,
  OUT_TOKEN = 3,
  OUT_DRAFT = 4,
  OUT_INDEX = 5,
  OUT_ROW = 6,
  OUT_SUM = 7;

/** Status codes (see wasm/src/error.rs). */
const E_NAN_LOGIT = -1,
  E_INF_LOGIT = -2,
  E_ALL_MASKED = -3,
  E_TEMPERATURE = -4,
  E_TOP_K = -5,
  E_TOP_P = -6,
  E_BAD_PROB = -7,
  E_ZERO_MASS = -8,
  E_BAD_K = -9,
  E_CANDIDATE = -10,
  E_UNIFORM = -11,
  E_TOO_FEW = -12,
  E_EMPTY = -13;

const EXPORTS = [
  "memory",
  "spectr_heap_base",
  "spectr_scratch_bytes",
  "spectr_warp",
  "spectr_solve_rho",
  "spectr_residual",
  "spectr_kseq_select",
  "spectr_kseq_step",
  "spectr_specinfer_select",
  "spectr_sample",
  "spectr_floor",
] as const;

/** Byte offsets of one call's buffers in WASM memory. */
interface Layout {
  a: number;
  b: number;
  c: number;
  d: number;
  out: number;
  candidates: number;
  uniforms: number;
  ids: number;
  scratch: number;
}

const up16 = (x: number) => (x + 15) & ~15;

/** How a kernel error status is described to the caller. */
interface ErrorContext {
  /** Names of rows 0 and 1 for probability errors, e.g. "target probs p". */
  rows: [string, string];
  /** The caller's rows (for the offending value in messages). */
  values?: [ArrayLike<number>, ArrayLike<number>?];
  /** Action for uniform errors: "verify drafts" or "sample". */
  action: string;
  uniforms?: ArrayLike<number>;
  candidates?: ArrayLike<number>;
  count?: number;
  vocab?: number;
  options?: { temperature: number; topK: number; topP: number };
}

/**
 * The WebAssembly SIMD kernel. Create it with {@linkcode loadKernel} (async, with a fallback) or
 * {@linkcode createWasmKernel} (sync).
 *
 * Every method validates its input like the reference (same error classes and messages, checked
 * inside the kernel's own passes) and returns fresh arrays owned by the caller. Probability rows
 * returned are Float32Array.
 *
 * @example Verify two draft candidates
 * ```ts
 * import { loadKernel } from "./wasm.ts";
 * import assert from "node:assert/strict";
 * const kernel = await loadKernel();
 * const p = kernel.warp(new Float32Array([2, 1, 0, -1]));
 * const q = kernel.warp(new Float32Array([1, 2, 0, -1]));
 * const { token, draftIndex, rho } = kernel.kseqSelect(p, q, [1, 0], [0.3, 0.2, 0.9]);
 * assert.ok(token >= 0 && token < 4 && draftIndex >= -1 && rho >= 1 && rho <= 2);
 * ```
 */
export class WasmKernel implements Kernel {
  /** Always `"wasm"`. */
  readonly name = "wasm" as const;
  #x: Exports;
  #base: number;
  #buffer: ArrayBuffer;
  #f32: Float32Array;
  #f64: Float64Array;
  #u32: Uint32Array;
  #i32: Int32Array;

  /**
   * Wraps an instance of `spectr_kernel.wasm`.
   *
   * @param instance An instance of the kernel module (instantiated with no imports).
   * @throws {TypeError} the instance lacks one of the kernel's exports.
   * @example
   * ```ts
   * import { WasmKernel } from "./wasm.ts";
   * const bytes = await Deno.readFile(new URL("./spectr_kernel.wasm", import.meta.url));
   * const { instance } = await WebAssembly.instantiate(bytes, {});
   * const kernel = new WasmKernel(instance);
   * console.assert(kernel.name === "wasm");
   * ```
   */
  constructor(instance: WebAssembly.Instance) {
    const x = instance.exports as Record<string, unknown>;
    for (const name of EXPORTS) {
      if (!(name in x)) throw new TypeError(`Cannot use the WASM kernel: the module does not export ${name}`);
    }
    this.#x = x as unknown as Exports;
    this.#base = up16(this.#x.spectr_heap_base() >>> 0);
    this.#buffer = this.#x.memory.buffer as ArrayBuffer;
    this.#f32 = new Float32Array(this.#buffer);
    this.#f64 = new Float64Array(this.#buffer);
    this.#u32 = new Uint32Array(this.#buffer);
    this.#i32 = new Int32Array(this.#buffer);
  }

  /**
   * Float32Array views of the two input rows of WASM memory for vocabulary `n`: fill `target`
   * and `draft` in place and pass them back (to any method, as probs or logits) to skip the
   * copy in. A later call that grows WASM memory (a larger `n` or more uniforms) detaches
   * these views: call `rowViews` again after that.
   *
   * @param n Vocabulary size.
   * @returns Views of rows 0 and 1, each `[n]`.
   * @example Fill in place, no copy
   * ```ts
   * import { loadKernel, WasmKernel } from "./wasm.ts";
   * const kernel = await loadKernel() as WasmKernel;
   * const { target, draft } = kernel.rowViews(3);
   * target.set([0.5, 0.5, 0]);
   * draft.set([0.2, 0.3, 0.5]);
   * console.assert(kernel.solveRho(target, draft, 2).rho >= 1);
   * ```
   */
  rowViews(n: number): { target: Float32Array; draft: Float32Array } {
    const l = this.#layout(n, 1024);
    return { target: new Float32Array(this.#buffer, l.a, n), draft: new Float32Array(this.#buffer, l.b, n) };
  }

  /**
   * Logits `[vocab]` → warped probabilities `[vocab]` (temperature → top-k → softmax → top-p),
   * as `warpReference`.
   *
   * @param logits Logit row; -Infinity masks a token.
   * @param options Temperature (0 = greedy), topK (0 disables), topP (1 disables).
   * @returns A fresh Float32Array of probabilities summing to 1.
   * @throws {TypeError} logits not a Float32Array.
   * @throws {RangeError} empty, NaN/+Infinity logits, all masked, or invalid options.
   * @example Greedy
   * ```ts
   * import { loadKernel } from "./wasm.ts";
   * import assert from "node:assert/strict";
   * const kernel = await loadKernel();
   * assert.deepEqual([...kernel.warp(new Float32Array([1, 3, 3]), { temperature: 0 })], [0, 1, 0]);
   * ```
   */
  warp(logits: Float32Array, options: WarpOptions = {}): Float32Array {
    const opt = resolveWarp(options);
    if (!(logits instanceof Float32Array) || logits.length === 0) checkLogits(logits);
    const n = logits.length;
    const l = this.#layout(n, 0);
    this.#put(logits, l.a);
    const s = this.#x.spectr_warp(l.a, n, l.c, opt.temperature, opt.topK, opt.topP, l.scratch, l.out);
    if (s !== 0) this.#fail(s, l, { rows: ["logits", "logits"], action: "warp logits", options: opt });
    return this.#f32.slice(l.c >> 2, (l.c >> 2) + n);
  }

  /**
   * Exact ρ*, β(ρ*) and acceptance 1 − (1 − β)^k for (p, q, k), found without sorting.
   *
   * @param p Target probs `[vocab]`.
   * @param q Draft probs `[vocab]`.
   * @param k Number of i.i.d. candidates.
   * @returns ρ* ∈ [1, k], β and the acceptance probability.
   * @throws {TypeError} p or q not a Float32Array / Float64Array.
   * @throws {RangeError} invalid rows, vocab mismatch, k not an integer in [1, 1024].
   * @example
   * ```ts
   * import { loadKernel } from "./wasm.ts";
   * import assert from "node:assert/strict";
   * const kernel = await loadKernel();
   * const same = new Float64Array([0.5, 0.5]);
   * assert.equal(kernel.solveRho(same, same, 4).rho, 1);
   * ```
   */
  solveRho(p: Probs, q: Probs, k: number): RhoSolution {
    if (!pairShapeOk(p, q) || !kOk(k)) {
      checkPair(p, q);
      checkK(k);
    }
    const n = p.length;
    const l = this.#layout(n, 0);
    this.#put(p, l.a);
    this.#put(q, l.b);
    const s = this.#x.spectr_solve_rho(l.a, l.b, n, k, l.scratch, l.out);
    if (s !== 0) this.#fail(s, l, pairContext(p, q));
    const o = l.out >> 3;
    return {
      rho: this.#f64[o + OUT_RHO],
      beta: this.#f64[o + OUT_BETA],
      acceptance: this.#f64[o + OUT_ACCEPTANCE],
    };
  }

  /**
   * The normalised K-SEQ residual max(0, p − min(q, p/ρ)·(1 − (1 − β)^k)/β) (p itself if it has
   * no mass).
   *
   * @returns A fresh Float32Array `[vocab]`.
   * @throws {RangeError} invalid rows, vocab mismatch, k not an integer in [1, 1024].
   * @example Disjoint supports: the residual is p
   * ```ts
   * import { loadKernel } from "./wasm.ts";
   * import assert from "node:assert/strict";
   * const kernel = await loadKernel();
   * const p = new Float32Array([1, 0]), q = new Float32Array([0, 1]);
   * assert.deepEqual([...kernel.residual(p, q, 2, kernel.solveRho(p, q, 2))], [1, 0]);
   * ```
   */
  residual(p: Probs, q: Probs, k: number, solution: RhoSolution): Float32Array {
    if (!pairShapeOk(p, q) || !kOk(k)) {
      checkPair(p, q);
      checkK(k);
    }
    const n = p.length;
    const l = this.#layout(n, 0);
    this.#put(p, l.a);
    this.#put(q, l.b);
    const s = this.#x.spectr_residual(l.a, l.b, n, k, solution.rho, solution.beta, l.c, l.out);
    if (s !== 0) this.#fail(s, l, pairContext(p, q));
    return this.#f32.slice(l.c >> 2, (l.c >> 2) + n);
  }

  /**
   * K-SEQ selection: accept candidate i, in order, iff `uniforms[i]·ρ·q(x_i) < p(x_i)`; else draw
   * the residual with `uniforms[k]`. One call into WASM (solve, test, residual draw).
   *
   * @param solution ρ*, β for (p, q, k); solved here when omitted.
   * @throws {RangeError} bad rows, candidate ids or uniforms.
   * @example One candidate equal to p's only token is always accepted
   * ```ts
   * import { loadKernel } from "./wasm.ts";
   * import assert from "node:assert/strict";
   * const kernel = await loadKernel();
   * const p = new Float64Array([0, 1]), q = new Float64Array([0.5, 0.5]);
   * assert.equal(kernel.kseqSelect(p, q, [1], [0.99, 0.3]).token, 1);
   * ```
   */
  kseqSelect(
    p: Probs,
    q: Probs,
    candidates: ArrayLike<number>,
    uniforms: ArrayLike<number>,
    solution?: RhoSolution,
  ): Selection & RhoSolution {
    if (!pairShapeOk(p, q)) checkPair(p, q);
    const n = p.length;
    checkDrawsAfter(candidates, uniforms, n, () => checkPair(p, q));
    const k = candidates.length;
    const l = this.#layout(n, k);
    this.#put(p, l.a);
    this.#put(q, l.b);
    this.#putDraws(l, candidates, uniforms);
    const has = solution === undefined ? 0 : 1;
    const s = this.#x.spectr_kseq_select(
      l.a,
      l.b,
      n,
      l.candidates,
      k,
      l.uniforms,
      has,
      solution?.rho ?? 0,
      solution?.beta ?? 0,
      l.scratch,
      l.out,
    );
    if (s !== 0) this.#fail(s, l, { ...pairContext(p, q), candidates, uniforms, vocab: n });
    const selection = this.#selection(l);
    return solution ? { ...solution, token: selection.token, draftIndex: selection.draftIndex } : selection;
  }

  /**
   * One full K-SEQ step in one call into WASM: warp both logit rows, solve ρ*, select (residual
   * draw included).
   *
   * @throws {TypeError} logits not Float32Array.
   * @throws {RangeError} bad logits or options, vocab mismatch, bad candidates or uniforms.
   * @example
   * ```ts
   * import { loadKernel } from "./wasm.ts";
   * import assert from "node:assert/strict";
   * const kernel = await loadKernel();
   * const t = new Float32Array([3, 1, 0]), d = new Float32Array([1, 3, 0]);
   * const r = kernel.kseqStep(t, d, { temperature: 1 }, [1, 1], [0.9, 0.9, 0.1]);
   * assert.equal(r.draftIndex, -1); // both rejected: token drawn from the residual
   * ```
   */
  kseqStep(
    targetLogits: Float32Array,
    draftLogits: Float32Array,
    options: WarpOptions,
    candidates: ArrayLike<number>,
    uniforms: ArrayLike<number>,
  ): Selection & RhoSolution {
    const opt = resolveWarp(options);
    const slow = () => {
      checkLogits(targetLogits);
      checkLogits(draftLogits);
      if (targetLogits.length !== draftLogits.length) {
        throw new RangeError(
          `Cannot verify drafts: vocab mismatch, target p has ${targetLogits.length} entries, draft q has ${draftLogits.length}`,
        );
      }
    };
    if (
      !(targetLogits instanceof Float32Array && draftLogits instanceof Float32Array) ||
      targetLogits.length === 0 || targetLogits.length !== draftLogits.length
    ) slow();
    const n = targetLogits.length;
    checkDrawsAfter(candidates, uniforms, n, slow);
    const k = candidates.length;
    const l = this.#layout(n, k);
    this.#put(targetLogits, l.a);
    this.#put(draftLogits, l.b);
    this.#putDraws(l, candidates, uniforms);
    const s = this.#x.spectr_kseq_step(
      l.a,
      l.b,
      n,
      l.c,
      l.d,
      opt.temperature,
      opt.topK,
      opt.topP,
      l.candidates,
      k,
      l.uniforms,
      l.scratch,
      l.out,
    );
    if (s !== 0) {
      this.#fail(s, l, {
        rows: ["logits", "logits"],
        action: "verify drafts",
        candidates,
        uniforms,
        vocab: n,
        options: opt,
      });
    }
    return this.#selection(l);
  }

  /**
   * SpecInfer recursive rejection sampling, as `specInferSelectReference`. p and q are not
   * modified (normalised copies are made inside WASM only at the first rejection).
   *
   * @throws {RangeError} bad rows, candidate ids or uniforms.
   * @example
   * ```ts
   * import { loadKernel } from "./wasm.ts";
   * import assert from "node:assert/strict";
   * const kernel = await loadKernel();
   * const p = new Float64Array([1, 0]), q = new Float64Array([0, 1]);
   * assert.deepEqual(kernel.specInferSelect(p, q, [1], [0.5, 0.5], false), { token: 0, draftIndex: -1 });
   * ```
   */
  specInferSelect(
    p: Probs,
    q: Probs,
    candidates: ArrayLike<number>,
    uniforms: ArrayLike<number>,
    withoutReplacement: boolean,
  ): Selection {
    if (!pairShapeOk(p, q)) checkPair(p, q);
    const n = p.length;
    checkDrawsAfter(candidates, uniforms, n, () => checkPair(p, q));
    const k = candidates.length;
    const l = this.#layout(n, k);
    this.#put(p, l.a);
    this.#put(q, l.b);
    this.#putDraws(l, candidates, uniforms);
    const s = this.#x.spectr_specinfer_select(
      l.a,
      l.b,
      n,
      l.candidates,
      k,
      l.uniforms,
      withoutReplacement ? 1 : 0,
      l.scratch,
      l.out,
    );
    if (s !== 0) this.#fail(s, l, { ...pairContext(p, q), candidates, uniforms, vocab: n });
    const o = l.out >> 3;
    return { token: this.#f64[o + OUT_TOKEN], draftIndex: this.#f64[o + OUT_DRAFT] };
  }

  /**
   * Draws `uniforms.length` ids from `probs` by inverse CDF (smallest id whose cumulative mass
   * exceeds u·total), i.i.d. or without replacement, as `sampleReference`.
   *
   * @returns A fresh Int32Array of ids.
   * @throws {RangeError} bad row or uniforms, or more distinct draws than tokens with mass.
   * @example
   * ```ts
   * import { loadKernel } from "./wasm.ts";
   * import assert from "node:assert/strict";
   * const kernel = await loadKernel();
   * assert.deepEqual([...kernel.sample(new Float64Array([0.5, 0.5]), [0.9, 0.9], true)], [1, 0]);
   * ```
   */
  sample(probs: Probs, uniforms: ArrayLike<number>, withoutReplacement = false): Int32Array {
    const count = uniforms.length;
    if (
      !(probs instanceof Float32Array || probs instanceof Float64Array) || probs.length === 0 ||
      !uniformsOk(uniforms)
    ) {
      checkProbs(probs, "probs");
      checkUniforms(uniforms, count, "sample");
    }
    const n = probs.length;
    const l = this.#layout(n, count);
    this.#put(probs, l.a);
    this.#f64.set(uniforms, l.uniforms >> 3);
    const s = this.#x.spectr_sample(
      l.a,
      n,
      l.uniforms,
      count,
      withoutReplacement ? 1 : 0,
      l.ids,
      l.scratch,
      l.out,
    );
    if (s !== 0) {
      this.#fail(s, l, { rows: ["probs", "probs"], values: [probs], action: "sample", uniforms, count });
    }
    return this.#i32.slice(l.ids >> 2, (l.ids >> 2) + count);
  }

  /**
   * The bench floor: for each of two logit rows, one SIMD max pass and one Σ exp(x − max) pass
   * (no validation, no output row). A lower bound for any full step.
   *
   * @returns Σ exp over both rows.
   * @example
   * ```ts
   * import { loadKernel, WasmKernel } from "./wasm.ts";
   * const kernel = await loadKernel() as WasmKernel;
   * const s = kernel.floor(new Float32Array([0, 0]), new Float32Array([0, 0]));
   * console.assert(Math.abs(s - 4) < 1e-6);
   * ```
   */
  floor(a: Float32Array, b: Float32Array): number {
    const n = Math.min(a.length, b.length);
    const l = this.#layout(n, 0);
    this.#put(a, l.a);
    this.#put(b, l.b);
    this.#x.spectr_floor(l.a, l.b, n, l.out);
    return this.#f64[(l.out >> 3) + OUT_SUM];
  }

  #layout(n: number, count: number): Layout {
    const row = up16(4 * n);
    const a = this.#base, b = a + row, c = b + row, d = c + row;
    const out = d + row;
    const candidates = out + 64;
    const uniforms = candidates + up16(4 * count);
    const ids = uniforms + up16(8 * (count + 1));
    const scratch = ids + up16(4 * count);
    const end = scratch + (this.#x.spectr_scratch_bytes(n, count) >>> 0);
    const memory = this.#x.memory;
    if (end > memory.buffer.byteLength) memory.grow(Math.ceil((end - memory.buffer.byteLength) / 65536));
    if (this.#buffer !== memory.buffer) {
      this.#buffer = memory.buffer as ArrayBuffer;
      this.#f32 = new Float32Array(this.#buffer);
      this.#f64 = new Float64Array(this.#buffer);
      this.#u32 = new Uint32Array(this.#buffer);
      this.#i32 = new Int32Array(this.#buffer);
    }
    return { a, b, c, d, out, candidates, uniforms, ids, scratch };
  }

  /** One `set()` per row; skipped for a view already at `offset` (see {@linkcode rowViews}). */
  #put(row: Probs, offset: number): void {
    if (row instanceof Float32Array && row.buffer === this.#buffer && row.byteOffset === offset) return;
    this.#f32.set(row, offset >> 2);
  }

  #putDraws(l: Layout, candidates: ArrayLike<number>, uniforms: ArrayLike<number>): void {
    this.#u32.set(candidates, l.candidates >> 2);
    this.#f64.set(uniforms, l.uniforms >> 3);
  }

  /** Maps a kernel status to the reference's error class and message. */
  /** The token, draft index, ρ, β and acceptance a K-SEQ call wrote to `out`. */
  #selection(l: Layout): Selection & RhoSolution {
    const o = l.out >> 3;
    const f = this.#f64;
    return {
      token: f[o + OUT_TOKEN],
      draftIndex: f[o + OUT_DRAFT],
      rho: f[o + OUT_RHO],
      beta: f[o + OUT_BETA],
      acceptance: f[o + OUT_ACCEPTANCE],
    };
  }

  #fail(status: number, l: Layout, ctx: ErrorContext): never {
    const o = l.out >> 3;
    const i = this.#f64[o + OUT_INDEX];
    const row = this.#f64[o + OUT_ROW] === 1 ? 1 : 0;
    const what = ctx.rows[row];
    switch (status) {
      case E_NAN_LOGIT:
        throw new RangeError(`Cannot warp logits: logit ${i} is NaN`);
      case E_INF_LOGIT:
        throw new RangeError(`Cannot warp logits: logit ${i} is +Infinity`);
      case E_ALL_MASKED:
        throw new RangeError("Cannot warp logits: every logit is -Infinity");
      case E_TEMPERATURE:
        throw new RangeError(
          `Cannot warp logits: temperature must be a finite number >= 0, got ${ctx.options?.temperature}`,
        );
      case E_TOP_K:
        throw new RangeError(
          `Cannot warp logits: topK must be an integer >= 0 (0 disables), got ${ctx.options?.topK}`,
        );
      case E_TOP_P:
        throw new RangeError(`Cannot warp logits: topP must be in (0, 1], got ${ctx.options?.topP}`);
      case E_BAD_PROB: {
        const x = ctx.values?.[row]?.[i];
        if (typeof x === "number" && x >= 0 && x !== Infinity) {
          throw new RangeError(
            `Cannot use ${what}: probability ${i} is ${x}, outside the float32 range of the WASM kernel`,
          );
        }
        throw new RangeError(`Cannot use ${what}: probability ${i} is ${x}, expected a finite number >= 0`);
      }
      case E_ZERO_MASS:
        throw new RangeError(`Cannot use ${what}: every probability is 0`);
      case E_BAD_K:
        throw new RangeError(
          `Cannot verify drafts: k must be an integer in [1, 1024], got ${ctx.candidates?.length}`,
        );
      case E_CANDIDATE:
        throw new RangeError(
          `Cannot verify drafts: candidate ${i} is token ${
            ctx.candidates?.[i]
          }, outside the vocabulary [0, ${ctx.vocab})`,
        );
      case E_UNIFORM:
        throw new RangeError(`Cannot ${ctx.action}: uniform ${i} is ${ctx.uniforms?.[i]}, outside [0, 1)`);
      case E_TOO_FEW:
        throw new RangeError(
          `Cannot sample ${ctx.count} distinct tokens: only ${i} have non-zero probability`,
        );
      case E_EMPTY:
        throw new RangeError(`Cannot use ${what}: the row is empty`);
      default:
        throw new Error(`Cannot run the WASM kernel: unknown status ${status}`);
    }
  }
}

function isProbs(x: unknown): x is Probs {
  return x instanceof Float32Array || x instanceof Float64Array;
}

function pairShapeOk(p: Probs, q: Probs): boolean {
  return isProbs(p) && isProbs(q) && p.length > 0 && p.length === q.length;
}

function kOk(k: number): boolean {
  return Number.isInteger(k) && k >= 1 && k <= 1024;
}

function uniformsOk(uniforms: ArrayLike<number>): boolean {
  for (let i = 0; i < uniforms.length; i++) {
    const u = uniforms[i];
    if (!(u >= 0 && u < 1)) return false;
  }
  return true;
}

function pairContext(p: Probs, q: Probs): ErrorContext {
  return { rows: ["target probs p", "draft probs q"], values: [p, q], action: "verify drafts" };
}

/**
 * Checks candidates and uniforms (O(k) in JS); on failure, first replays the row checks the
 * reference runs before them (O(V), error path only), so the first error is the reference's.
 */
function checkDrawsAfter(
  candidates: ArrayLike<number>,
  uniforms: ArrayLike<number>,
  vocab: number,
  before: () => void,
): void {
  try {
    checkCandidates(candidates, uniforms, vocab);
  } catch (error) {
    before();
    throw error;
  }
}

/** The smallest module using a SIMD instruction, to tell "no SIMD here" from "bad module". */
const SIMD_PROBE = new Uint8Array([
  0,
  97,
  115,
  109,
  1,
  0,
  0,
  0,
  1,
  5,
  1,
  96,
  0,
  1,
  123,
  3,
  2,
  1,
  0,
  10,
  10,
  1,
  8,
  0,
  65,
  0,
  253,
  15,
  253,
  98,
  11,
]);

async function readBytes(source: BufferSource | URL | string): Promise<BufferSource> {
  if (source instanceof URL || typeof source === "string") {
    const url = source instanceof URL ? source : new URL(source, import.meta.url);
    const response = await fetch(url);
    if (!response.ok) {
      await response.body?.cancel();
      throw new Error(`Cannot load the WASM kernel: fetching ${url.href} gave HTTP ${response.status}`);
    }
    return new Uint8Array(await response.arrayBuffer());
  }
  return source;
}

/**
 * Instantiates the kernel synchronously from its bytes (no imports). Browsers refuse synchronous
 * compilation of large modules on the main thread: prefer {@linkcode loadKernel} there.
 *
 * @param bytes The bytes of `spectr_kernel.wasm`.
 * @returns The kernel.
 * @throws {WebAssembly.CompileError} the bytes do not validate (e.g. no SIMD support).
 * @example
 * ```ts
 * import { createWasmKernel } from "./wasm.ts";
 * const kernel = createWasmKernel(await Deno.readFile(new URL("./spectr_kernel.wasm", import.meta.url)));
 * console.assert(kernel.sample(new Float32Array([0, 1]), [0.5])[0] === 1);
 * ```
 */
export function createWasmKernel(bytes: BufferSource): WasmKernel {
  return new WasmKernel(new WebAssembly.Instance(new WebAssembly.Module(bytes), {}));
}

/**
 * Loads the WASM SIMD kernel. Where the module does not validate (WebAssembly SIMD missing, or a
 * bad module), returns the plain-TypeScript {@linkcode referenceKernel} with a visible
 * `console.warn`, or throws when `fallback` is false.
 *
 * @param options Where to read the module from and whether to fall back.
 * @returns The WASM kernel, or the reference kernel as a fallback.
 * @throws {Error} the module does not validate and `fallback` is false, or it cannot be fetched.
 * @example Load and use
 * ```ts
 * import { loadKernel } from "./wasm.ts";
 * import assert from "node:assert/strict";
 * const kernel = await loadKernel({ fallback: false });
 * assert.equal(kernel.name, "wasm");
 * ```
 * @example From bytes (edge runtimes without a file system)
 * ```ts
 * import { loadKernel } from "./wasm.ts";
 * const bytes = await Deno.readFile(new URL("./spectr_kernel.wasm", import.meta.url));
 * const kernel = await loadKernel({ wasm: bytes });
 * console.assert(kernel.name === "wasm");
 * ```
 */
export async function loadKernel(options: LoadKernelOptions = {}): Promise<Kernel> {
  const { fallback = true } = options;
  const bytes = await readBytes(options.wasm ?? new URL("./spectr_kernel.wasm", import.meta.url));
  if (!WebAssembly.validate(bytes)) {
    const why = WebAssembly.validate(SIMD_PROBE)
      ? "the module does not validate"
      : "this runtime lacks WebAssembly SIMD (the module does not validate)";
    if (!fallback) throw new Error(`Cannot load the WASM kernel: ${why}`);
    console.warn(
      `spectr: cannot load the WASM kernel: ${why}; using the much slower TypeScript reference kernel`,
    );
    return referenceKernel;
  }
  const { instance } = await WebAssembly.instantiate(bytes, {});
  return new WasmKernel(instance);
}
