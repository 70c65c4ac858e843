/**
 * Types shared by the WASM kernel and its plain-TypeScript reference.
 *
 * Notation (fixed for the whole project): `p` is the target distribution, `q` the draft
 * distribution, `k` the number of draft candidates at one tree level, `V` the vocabulary size.
 *
 * @module
 */

/** A probability row over the vocabulary, `[vocab]` probs summing to 1. */
export type Probs = Float32Array | Float64Array;

/**
 * How logits become probabilities. The same warp is applied to the target and the draft, so
 * every method stays exact for the *warped* target distribution.
 *
 * Order: temperature → top-k → softmax → top-p (as Hugging Face `generate`).
 */
export interface WarpOptions {
  /**
   * Softmax temperature; `0` means greedy: a one-hot row at the argmax, ties to the lowest id.
   * @default {1}
   */
  temperature?: number;
  /**
   * Keep only tokens whose logit is at least the k-th largest (ties at the boundary are kept);
   * `0` disables.
   * @default {0}
   */
  topK?: number;
  /**
   * Nucleus sampling: keep the smallest set of most probable tokens whose mass reaches `topP`
   * (every token tied with the last one kept is kept too), then renormalise. `1` disables.
   * @default {1}
   */
  topP?: number;
}

/** The exact K-SEQ parameter ρ* for (p, q, k) and the quantities derived from it. */
export interface RhoSolution {
  /** ρ*: the smallest ρ in [1, k] with 1 − (1 − β(ρ))^k ≤ ρ·β(ρ). */
  rho: number;
  /** β(ρ*) = Σ_x min(q(x), p(x)/ρ*). */
  beta: number;
  /** Probability that one of the k candidates is accepted: 1 − (1 − β)^k. */
  acceptance: number;
}

/** What one verification step (one tree level) decided. */
export interface Selection {
  /** The output token id. */
  token: number;
  /** Index of the accepted candidate, or `-1` when the token came from the residual distribution. */
  draftIndex: number;
}

/**
 * The kernel a verifier calls: the WASM SIMD kernel or the plain-TypeScript reference.
 * (The bench's and tests' extra entry points, the one-call K-SEQ step and the speed floor, are not
 * part of it: see `internals.ts`.)
 */
export interface Kernel {
  /** `"wasm"` for the SIMD kernel, `"reference"` for the plain-TypeScript oracle. */
  readonly name: "wasm" | "reference";
  /** Logits `[vocab]` → warped probabilities `[vocab]`. */
  warp(logits: Float32Array, options?: WarpOptions): Probs;
  /** Exact ρ*, β and acceptance probability for (p, q, k). */
  solveRho(p: Probs, q: Probs, k: number): RhoSolution;
  /** The K-SEQ residual distribution `[vocab]` for (p, q, k) at the given solution. */
  residual(p: Probs, q: Probs, k: number, solution: RhoSolution): Probs;
  /**
   * K-SEQ selection: accept candidate i (in order) iff `uniforms[i]·ρ·q(x_i) < p(x_i)`; when none is
   * accepted, draw from the residual with `uniforms[k]`. `uniforms.length` must be `k + 1`.
   */
  kseqSelect(
    p: Probs,
    q: Probs,
    candidates: ArrayLike<number>,
    uniforms: ArrayLike<number>,
    solution?: RhoSolution,
  ): Selection & RhoSolution;
  /**
   * SpecInfer recursive rejection sampling. With replacement: accept x_i iff
   * `u_i·q(x_i) < p_i(x_i)`, else `p_{i+1} = norm(max(p_i − q, 0))`. Without replacement, q is
   * also renormalised without each rejected token. `uniforms.length` must be `k + 1`.
   */
  specInferSelect(
    p: Probs,
    q: Probs,
    candidates: ArrayLike<number>,
    uniforms: ArrayLike<number>,
    withoutReplacement: boolean,
  ): Selection;
  /**
   * Draw `uniforms.length` token ids from `probs` by inverse CDF (smallest id whose cumulative
   * mass exceeds u·total), i.i.d. or without replacement (each later draw renormalised without the
   * earlier ones).
   */
  sample(probs: Probs, uniforms: ArrayLike<number>, withoutReplacement?: boolean): Int32Array;
}
