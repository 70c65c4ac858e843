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
 * This module is the public entry ({@linkcode loadKernel}, {@linkcode createWasmKernel},
 * {@linkcode WasmKernel}); the parts behind it: `wasm_abi.ts` (the exports' names and signatures,
 * the `out` slots), `wasm_memory.ts` (where a call's buffers lie in WASM memory),
 * `abi_errors.ts` (status codes and messages), `wasm_load.ts` (bytes from a URL, validation).
 *
 * @module
 */

import { type StatusContext, statusError } from "./abi_errors.ts";
import type { KernelInternals } from "./internals.ts";
import { referenceKernel } from "./reference.ts";
import type { Kernel, Probs, RhoSolution, Selection, WarpOptions } from "./types.ts";
import {
  checkCandidates,
  checkK,
  checkLogits,
  checkPair,
  checkProbs,
  checkSameVocab,
  checkUniforms,
  resolveWarp,
} from "./validate.ts";
import { bindExports, type KernelExports, OUT } from "./wasm_abi.ts";
import { invalidReason, kernelWasmUrl, readBytes } from "./wasm_load.ts";
import { KernelMemory, type Layout } from "./wasm_memory.ts";

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
export class WasmKernel implements Kernel, KernelInternals {
  /** Always `"wasm"`. */
  readonly name = "wasm" as const;
  #x: KernelExports;
  #m: KernelMemory;

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
    this.#x = bindExports(instance);
    this.#m = new KernelMemory(this.#x);
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
    const l = this.#m.layout(n, 1024);
    const buffer = this.#m.buffer;
    return { target: new Float32Array(buffer, l.a, n), draft: new Float32Array(buffer, l.b, n) };
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
    const l = this.#m.layout(n, 0);
    this.#m.put(logits, l.a);
    const s = this.#x.spectr_warp(l.a, n, l.c, opt.temperature, opt.topK, opt.topP, l.scratch, l.out);
    if (s !== 0) this.#fail(s, l, { rows: ["logits", "logits"], action: "warp logits", options: opt });
    return this.#m.f32.slice(l.c >> 2, (l.c >> 2) + n);
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
    const l = this.#m.layout(n, 0);
    this.#m.put(p, l.a);
    this.#m.put(q, l.b);
    const s = this.#x.spectr_solve_rho(l.a, l.b, n, k, l.scratch, l.out);
    if (s !== 0) this.#fail(s, l, pairContext(p, q));
    const m = this.#m;
    return { rho: m.out(l, OUT.rho), beta: m.out(l, OUT.beta), acceptance: m.out(l, OUT.acceptance) };
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
    const l = this.#m.layout(n, 0);
    this.#m.put(p, l.a);
    this.#m.put(q, l.b);
    const s = this.#x.spectr_residual(l.a, l.b, n, k, solution.rho, solution.beta, l.c, l.out);
    if (s !== 0) this.#fail(s, l, pairContext(p, q));
    return this.#m.f32.slice(l.c >> 2, (l.c >> 2) + n);
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
    const l = this.#m.layout(n, k);
    this.#m.put(p, l.a);
    this.#m.put(q, l.b);
    this.#m.putDraws(l, candidates, uniforms);
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
   * draw included). For the kernel bench and tests ({@linkcode KernelInternals}); not part of
   * {@linkcode Kernel}.
   *
   * @throws {TypeError} logits not Float32Array.
   * @throws {RangeError} bad logits or options, vocab mismatch, bad candidates or uniforms.
   * @example
   * ```ts
   * import { loadKernel, type WasmKernel } from "./wasm.ts";
   * import assert from "node:assert/strict";
   * const kernel = await loadKernel({ fallback: false }) as WasmKernel;
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
      checkSameVocab(targetLogits, draftLogits);
    };
    if (
      !(targetLogits instanceof Float32Array && draftLogits instanceof Float32Array) ||
      targetLogits.length === 0 || targetLogits.length !== draftLogits.length
    ) slow();
    const n = targetLogits.length;
    checkDrawsAfter(candidates, uniforms, n, slow);
    const k = candidates.length;
    const l = this.#m.layout(n, k);
    this.#m.put(targetLogits, l.a);
    this.#m.put(draftLogits, l.b);
    this.#m.putDraws(l, candidates, uniforms);
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
    const l = this.#m.layout(n, k);
    this.#m.put(p, l.a);
    this.#m.put(q, l.b);
    this.#m.putDraws(l, candidates, uniforms);
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
    return { token: this.#m.out(l, OUT.token), draftIndex: this.#m.out(l, OUT.draftIndex) };
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
    const l = this.#m.layout(n, count);
    this.#m.put(probs, l.a);
    this.#m.f64.set(uniforms, l.uniforms >> 3);
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
    return this.#m.i32.slice(l.ids >> 2, (l.ids >> 2) + count);
  }

  /**
   * The bench floor: for each of two logit rows, one SIMD max pass and one Σ exp(x − max) pass
   * (no validation, no output row). A lower bound for any full step. For the kernel bench only;
   * not part of {@linkcode Kernel}.
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
    const l = this.#m.layout(n, 0);
    this.#m.put(a, l.a);
    this.#m.put(b, l.b);
    this.#x.spectr_floor(l.a, l.b, n, l.out);
    return this.#m.out(l, OUT.sum);
  }

  /** The token, draft index, ρ, β and acceptance a K-SEQ call wrote to `out`. */
  #selection(l: Layout): Selection & RhoSolution {
    const m = this.#m;
    return {
      token: m.out(l, OUT.token),
      draftIndex: m.out(l, OUT.draftIndex),
      rho: m.out(l, OUT.rho),
      beta: m.out(l, OUT.beta),
      acceptance: m.out(l, OUT.acceptance),
    };
  }

  /** Throws the reference's error for a non-zero status (see `abi_errors.ts`). */

  #fail(status: number, l: Layout, ctx: StatusContext): never {
    throw statusError(status, this.#m.out(l, OUT.errorIndex), this.#m.out(l, OUT.errorRow), ctx);
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

function pairContext(p: Probs, q: Probs): StatusContext {
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
  const bytes = await readBytes(options.wasm ?? kernelWasmUrl());
  const why = invalidReason(bytes);
  if (why !== undefined) {
    if (!fallback) throw new Error(`Cannot load the WASM kernel: ${why}`);
    console.warn(
      `spectr: cannot load the WASM kernel: ${why}; using the much slower TypeScript reference kernel`,
    );
    return referenceKernel;
  }
  const { instance } = await WebAssembly.instantiate(bytes, {});
  return new WasmKernel(instance);
}
