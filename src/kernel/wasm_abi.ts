/**
 * The TypeScript mirror of the C ABI of `spectr_kernel.wasm` (`wasm/src/lib.rs`): the exports'
 * names and signatures, and the slots of the `out` array they write. Pointers are byte offsets into
 * the exported memory (see `wasm_memory.ts`); every export but the first two returns an `i32`
 * status, 0 or a code of `abi_errors.ts`.
 *
 * `abi_errors_test.ts` checks {@linkcode EXPORT_ARITY} and {@linkcode OUT} against `lib.rs` and
 * the committed module; the compiler checks {@linkcode EXPORT_ARITY} against
 * {@linkcode KernelExports}.
 *
 * @module
 */

/** The exports of `spectr_kernel.wasm`, as `extern "C"` functions over byte offsets. */
export interface KernelExports {
  /** The module's linear memory; JS owns everything above `spectr_heap_base()`. */
  memory: WebAssembly.Memory;
  /** First free byte of memory. */
  spectr_heap_base(): number;
  /** Scratch bytes the exports need for rows of `n` and `count` candidates or uniforms. */
  spectr_scratch_bytes(n: number, count: number): number;
  /** Logits → normalised warped probabilities in `dst`; `out[sum]` = the sum before normalising. */
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
  /** Exact ρ*, β, acceptance into `out`. */
  spectr_solve_rho(p: number, q: number, n: number, k: number, scratch: number, out: number): number;
  /** The normalised K-SEQ residual at (ρ, β) into `dst`. */
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
  /** K-SEQ selection (ρ* solved unless `hasSolution`), residual draw included. */
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
  /** Warp both logit rows into `pOut` / `qOut`, solve ρ*, select. */
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
  /** SpecInfer recursive rejection sampling, with or without replacement. */
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
  /** `count` inverse-CDF draws into `ids`, i.i.d. or without replacement. */
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
  /** The bench floor: Σ exp(x − max) over both rows into `out[sum]`. */
  spectr_floor(a: number, b: number, n: number, out: number): number;
  /** `out[m×n] = x[m×k] · w[k×n] (+ bias[n] unless bias is 0)`: the kernel backend's linear layer. */
  spectr_lm_linear(x: number, m: number, k: number, w: number, n: number, bias: number, out: number): number;
  /** `out[m×n] = x[m×k] · wᵀ` for `w[n×k]` (a tied embedding as output head). */
  spectr_lm_linear_t(x: number, m: number, k: number, w: number, n: number, out: number): number;
  /** Layer norm of the rows of `x[m×n]`. */
  spectr_lm_layer_norm(
    x: number,
    m: number,
    n: number,
    w: number,
    b: number,
    eps: number,
    out: number,
  ): number;
  /** RMS norm of the rows of `x[m×n]`. */
  spectr_lm_rms_norm(x: number, m: number, n: number, w: number, eps: number, out: number): number;
  /** In place tanh GELU of `x[n]`. */
  spectr_lm_gelu_tanh(x: number, n: number): number;
  /** In place `gate[n] ← gate · σ(gate) · up[n]`. */
  spectr_lm_silu_mul(gate: number, up: number, n: number): number;
  /** Quantizes the rows of `x[m×k]` per 32-value block to i16 codes, scales and block sums. */
  spectr_lm_quantize_rows(x: number, m: number, k: number, xq: number, xs: number, xsum: number): number;
  /** 8-bit block-quantized linear layer over rows quantized by `spectr_lm_quantize_rows`. */
  spectr_lm_linear_q8(
    xq: number,
    xs: number,
    xsum: number,
    m: number,
    k: number,
    codes: number,
    scales: number,
    mins: number,
    n: number,
    bias: number,
    out: number,
  ): number;
  /** Masked attention of one row over a KV cache (`wasm/src/lm.rs`). */
  spectr_lm_attention(
    q: number,
    k: number,
    v: number,
    mask: number,
    t: number,
    total: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    scale: number,
    scores: number,
    out: number,
  ): number;
}

/** The name of an exported function. */
export type ExportName = Exclude<keyof KernelExports, "memory">;

/**
 * Every exported function and its number of parameters (a wasm function's `length`). The
 * `satisfies` clause makes the compiler hold it to {@linkcode KernelExports}.
 *
 * @example
 * ```ts
 * import { EXPORT_ARITY } from "./wasm_abi.ts";
 * console.assert(EXPORT_ARITY.spectr_floor === 4);
 * ```
 */
export const EXPORT_ARITY = {
  spectr_heap_base: 0,
  spectr_scratch_bytes: 2,
  spectr_warp: 8,
  spectr_solve_rho: 6,
  spectr_residual: 8,
  spectr_kseq_select: 11,
  spectr_kseq_step: 13,
  spectr_specinfer_select: 9,
  spectr_sample: 8,
  spectr_floor: 4,
  spectr_lm_linear: 7,
  spectr_lm_linear_t: 6,
  spectr_lm_layer_norm: 7,
  spectr_lm_rms_norm: 6,
  spectr_lm_gelu_tanh: 2,
  spectr_lm_silu_mul: 3,
  spectr_lm_attention: 12,
  spectr_lm_quantize_rows: 6,
  spectr_lm_linear_q8: 11,
} as const satisfies { [K in ExportName]: Parameters<KernelExports[K]>["length"] };

/**
 * Slots of the `out` f64 array every export writes (`OUT_*` in `wasm/src/lib.rs`): results on
 * success, the offending element and row on failure.
 *
 * @example
 * ```ts
 * import { OUT } from "./wasm_abi.ts";
 * console.assert(OUT.errorIndex === 5);
 * ```
 */
export const OUT = {
  rho: 0,
  beta: 1,
  acceptance: 2,
  token: 3,
  draftIndex: 4,
  errorIndex: 5,
  errorRow: 6,
  sum: 7,
} as const;

/** Bytes of the `out` array (8 f64). */
export const OUT_BYTES = 64;

/**
 * The exports of an instance of the kernel module, checked to be all there.
 *
 * @param instance An instance of `spectr_kernel.wasm` (instantiated with no imports).
 * @returns Its exports, typed.
 * @throws {TypeError} the instance lacks one of the kernel's exports.
 * @example
 * ```ts
 * import { bindExports } from "./wasm_abi.ts";
 * const bytes = await Deno.readFile(new URL("./spectr_kernel.wasm", import.meta.url));
 * const { instance } = await WebAssembly.instantiate(bytes, {});
 * console.assert(bindExports(instance).spectr_scratch_bytes(0, 0) === 16);
 * ```
 */
export function bindExports(instance: WebAssembly.Instance): KernelExports {
  const x = instance.exports as Record<string, unknown>;
  for (const name of ["memory", ...Object.keys(EXPORT_ARITY)]) {
    if (!(name in x)) throw new TypeError(`Cannot use the WASM kernel: the module does not export ${name}`);
  }
  return x as unknown as KernelExports;
}
