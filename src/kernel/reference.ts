/**
 * Plain-TypeScript reference of the kernel math, in float64. It is the test oracle for the WASM
 * kernel and the fallback where WebAssembly SIMD is missing. Written to be read, not to be fast:
 * ρ* is found by fully sorting the ratios p/q (the kernel avoids the full sort).
 *
 * SpecTr (Sun et al., NeurIPS 2023), K-SEQ with k i.i.d. candidates X_i ~ q and ρ ≥ 1:
 *   β(ρ) = Σ_x min(q(x), p(x)/ρ); accept X_i (in order) with probability min(1, p(X_i)/(ρ q(X_i)));
 *   if none is accepted, sample p_res(x) ∝ p(x) − min(q(x), p(x)/ρ)·(1 − (1 − β)^k)/β.
 *   Exact iff 1 − (1 − β(ρ))^k ≤ ρβ(ρ); ρ* is the smallest such ρ in [1, k].
 * With Σp = Σq = 1, 1 − β = d(ρ) = Σ max(0, q − p/ρ) and 1 − ρβ = e(ρ) = Σ max(0, p − ρq), so the
 * condition is e − d^k ≤ 0: both kernels evaluate it in that form, with e and d divided by Σp and
 * Σq (no 1 − β is formed, so p ≈ q does not cancel and identical rows give ρ* = 1 even when a
 * float32 row's sum is not exactly 1), and use d for 1 − β in the acceptance 1 − d^k and the
 * residual factor acceptance·Σp/β.
 *
 * @module
 */

import { ABI_ERRORS } from "./abi_errors.ts";
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

/**
 * Logits `[vocab]` → warped probabilities `[vocab]` (temperature → top-k → softmax → top-p).
 *
 * @param logits Logit row; -Infinity masks a token.
 * @param options Temperature (0 = greedy one-hot, ties to the lowest id), topK, topP.
 * @returns Probabilities summing to 1, as float64.
 * @throws {RangeError} NaN/+Infinity logits, all masked, or invalid options.
 * @example Greedy
 * ```ts
 * import { warpReference } from "./reference.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual([...warpReference(new Float32Array([1, 3, 3]), { temperature: 0 })], [0, 1, 0]);
 * ```
 */
export function warpReference(logits: Float32Array, options: WarpOptions = {}): Float64Array {
  const { temperature, topK, topP } = resolveWarp(options);
  checkLogits(logits);
  const n = logits.length;
  const out = new Float64Array(n);
  if (temperature === 0) {
    let best = 0;
    for (let i = 1; i < n; i++) if (logits[i] > logits[best]) best = i;
    out[best] = 1;
    return out;
  }
  const z = new Float64Array(n);
  for (let i = 0; i < n; i++) z[i] = logits[i] / temperature;
  if (topK > 0 && topK < n) {
    const threshold = Float64Array.from(z).sort().reverse()[topK - 1];
    for (let i = 0; i < n; i++) if (z[i] < threshold) z[i] = -Infinity;
  }
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (z[i] > max) max = z[i];
  let sum = 0;
  for (let i = 0; i < n; i++) {
    out[i] = Math.exp(z[i] - max);
    sum += out[i];
  }
  for (let i = 0; i < n; i++) out[i] /= sum;
  if (topP < 1) {
    const sorted = Float64Array.from(out).sort().reverse();
    let cumulative = 0;
    let threshold = 0;
    for (let j = 0; j < n; j++) {
      cumulative += sorted[j];
      if (cumulative >= topP) {
        threshold = sorted[j];
        break;
      }
    }
    let kept = 0;
    for (let i = 0; i < n; i++) {
      if (out[i] < threshold) out[i] = 0;
      kept += out[i];
    }
    for (let i = 0; i < n; i++) out[i] /= kept;
  }
  return out;
}

/** x clamped to [0, 1]. */
const clamp01 = (x: number) => Math.min(1, Math.max(0, x));

/**
 * f(ρ) = e(ρ) − d(ρ)^k (= 1 − (1 − β)^k − ρβ for rows summing to 1): positive left of ρ*, ≤ 0 from
 * ρ* on. Above = tokens counted with ratio ≥ ρ (Σq = `a`, Σp = `pa`), below = the rest (Σp = `b`,
 * Σq = `qb`): e = (pa − ρ·a)/Σp and d = (qb − b/ρ)/Σq with Σp = pa + b, Σq = a + qb, so rows whose
 * sums are not exactly 1 solve like the normalised rows; p = q gives 0 − 0, disjoint rows 1 − 1.
 */
function gap(a: number, pa: number, b: number, qb: number, rho: number, k: number): number {
  const e = clamp01((pa - rho * a) / (pa + b));
  const d = clamp01((qb - b / rho) / (a + qb));
  return e - d ** k;
}

/**
 * ρ, β and what follows from them over the whole row: d = Σ max(0, q − p/ρ)/Σq (1 − β without the
 * cancellation: the probability that one candidate is rejected), the acceptance 1 − d^k (0 when
 * β = 0) and the residual factor c = acceptance·Σp/β (k when β = 0), which is
 * (1 − (1 − β)^k)/β for normalised rows.
 */
function derived(
  p: Probs,
  q: Probs,
  k: number,
  rho: number,
  beta: number,
): { acceptance: number; factor: number } {
  let d = 0, sp = 0, sq = 0;
  for (let i = 0; i < p.length; i++) {
    d += Math.max(0, q[i] - p[i] / rho);
    sp += p[i];
    sq += q[i];
  }
  const acceptance = beta > 0 ? 1 - clamp01(d / sq) ** k : 0;
  return { acceptance, factor: beta > 0 ? (acceptance * sp) / beta : k };
}

/**
 * Exact ρ* for K-SEQ by sorting the ratios r = p/q. Between consecutive ratios, with A = Σ_{r ≥ ρ} q,
 * P_A = Σ_{r ≥ ρ} p, B = Σ_{r < ρ} p and Q_B = Σ_{r < ρ} q (prefix sums over the sorted order),
 * e(ρ) = P_A − ρA and d(ρ) = Q_B − B/ρ, so the segment holding the root of f = e − d^k is found from
 * the breakpoints and the root is bisected inside it to float64 resolution. Tokens with q = 0 < p
 * add p to e and tokens with p = 0 < q add q to d for every ρ (they are kept out of the sort: no
 * division by zero).
 *
 * @param p Target probs `[vocab]`.
 * @param q Draft probs `[vocab]`.
 * @param k Number of i.i.d. candidates (k = 1 gives ρ* = 1: speculative sampling).
 * @returns ρ*, β(ρ*) and the acceptance probability 1 − (1 − β)^k, computed as 1 − d^k.
 * @throws {RangeError} vocab mismatch, invalid rows, k < 1.
 * @example
 * ```ts
 * import { solveRhoReference } from "./reference.ts";
 * import assert from "node:assert/strict";
 * const same = new Float64Array([0.5, 0.5]);
 * assert.equal(solveRhoReference(same, same, 4).rho, 1);
 * ```
 */
export function solveRhoReference(p: Probs, q: Probs, k: number): RhoSolution {
  checkPair(p, q);
  checkK(k);
  const n = p.length;
  let rho = 1;
  if (k > 1) {
    const ids: number[] = [];
    let pOnly = 0; // Σp where q = 0: always above
    let qOnly = 0; // Σq where p = 0: always below
    for (let i = 0; i < n; i++) {
      if (p[i] > 0 && q[i] > 0) ids.push(i);
      else if (q[i] > 0) qOnly += q[i];
      else pOnly += p[i];
    }
    ids.sort((x, y) => p[y] / q[y] - p[x] / q[x]); // ratio descending
    const m = ids.length;
    // qAbove[j], pAbove[j] = Σ q, Σ p over the j largest ratios; pBelow[j], qBelow[j] over the rest.
    const qAbove = new Float64Array(m + 1);
    const pAbove = new Float64Array(m + 1);
    const pBelow = new Float64Array(m + 1);
    const qBelow = new Float64Array(m + 1);
    for (let j = 0; j < m; j++) {
      qAbove[j + 1] = qAbove[j] + q[ids[j]];
      pAbove[j + 1] = pAbove[j] + p[ids[j]];
    }
    for (let j = m - 1; j >= 0; j--) {
      pBelow[j] = pBelow[j + 1] + p[ids[j]];
      qBelow[j] = qBelow[j + 1] + q[ids[j]];
    }
    const f = (j: number, r: number) => gap(qAbove[j], pOnly + pAbove[j], pBelow[j], qOnly + qBelow[j], r, k);
    const ratio = (j: number) => p[ids[j]] / q[ids[j]];
    // Number of ratios >= value (a linear scan: the reference favours plainness).
    const countAtLeast = (value: number) => {
      let j = 0;
      while (j < m && ratio(j) >= value) j++;
      return j;
    };
    let above = countAtLeast(1);
    if (f(above, 1) > 0) {
      // Breakpoints inside (1, k), ascending; the root's segment [lo, hi] ends at the first with f <= 0.
      // Walking j downwards, the first index of a tie group seen is its last, so j + 1 ratios are >= r.
      let lo = 1;
      let hi = k;
      above = countAtLeast(k);
      for (let j = m - 1; j >= 0; j--) {
        const r = ratio(j);
        if (r <= 1) continue;
        if (r >= k) break;
        if (f(j + 1, r) <= 0) {
          hi = r;
          above = j + 1;
          break;
        }
        lo = r;
      }
      for (;;) {
        const mid = (lo + hi) / 2;
        if (mid <= lo || mid >= hi) break;
        if (f(above, mid) <= 0) hi = mid;
        else lo = mid;
      }
      rho = hi;
    }
  }
  let beta = 0;
  for (let i = 0; i < n; i++) beta += Math.min(q[i], p[i] / rho);
  return { rho, beta, acceptance: derived(p, q, k, rho, beta).acceptance };
}

/**
 * The K-SEQ residual p_res(x) ∝ max(0, p(x) − min(q(x), p(x)/ρ)·(1 − (1 − β)^k)/β), normalised;
 * the factor is computed as (1 − d^k)·Σp/β with d = Σ max(0, q − p/ρ)/Σq (recomputed here from ρ,
 * so a given solution needs only ρ and β). With β = 0 the factor's limit k is used (the min is 0
 * then anyway). If the residual has no mass (acceptance is 1, so it is never drawn), p itself is
 * returned.
 *
 * @returns Residual probabilities `[vocab]`.
 * @throws {RangeError} vocab mismatch, invalid rows, k < 1.
 * @example Disjoint supports: the residual is p
 * ```ts
 * import { residualReference, solveRhoReference } from "./reference.ts";
 * import assert from "node:assert/strict";
 * const p = new Float64Array([1, 0]), q = new Float64Array([0, 1]);
 * assert.deepEqual([...residualReference(p, q, 2, solveRhoReference(p, q, 2))], [1, 0]);
 * ```
 */
export function residualReference(p: Probs, q: Probs, k: number, solution: RhoSolution): Float64Array {
  checkPair(p, q);
  checkK(k);
  const { rho, beta } = solution;
  const { factor } = derived(p, q, k, rho, beta);
  const out = new Float64Array(p.length);
  let sum = 0;
  for (let i = 0; i < p.length; i++) {
    out[i] = Math.max(0, p[i] - Math.min(q[i], p[i] / rho) * factor);
    sum += out[i];
  }
  if (!(sum > 0)) return normalised(p);
  for (let i = 0; i < p.length; i++) out[i] /= sum;
  return out;
}

/**
 * Inverse-CDF draw: the smallest id whose cumulative weight exceeds `u · Σ weights`. Zero-weight
 * ids are never drawn; if rounding leaves `u · total` past the last sum, the last positive id is used.
 *
 * @example
 * ```ts
 * import { inverseCdf } from "./reference.ts";
 * import assert from "node:assert/strict";
 * assert.equal(inverseCdf([0.5, 0, 0.5], 0.5), 2);
 * ```
 */
export function inverseCdf(weights: ArrayLike<number>, u: number): number {
  let total = 0;
  for (let i = 0; i < weights.length; i++) total += weights[i];
  const target = u * total;
  let cumulative = 0;
  let last = -1;
  for (let i = 0; i < weights.length; i++) {
    if (weights[i] <= 0) continue;
    cumulative += weights[i];
    last = i;
    if (cumulative > target) return i;
  }
  return last;
}

/**
 * K-SEQ selection over k candidates (k = candidates.length): accept candidate i, in order, iff
 * `uniforms[i]·ρ·q(x_i) < p(x_i)`; else draw the residual with `uniforms[k]`.
 *
 * @param solution ρ*, β for (p, q, k); solved here when omitted.
 * @throws {RangeError} bad rows, candidate ids or uniforms.
 * @example One candidate equal to p's only token is always accepted
 * ```ts
 * import { kseqSelectReference } from "./reference.ts";
 * import assert from "node:assert/strict";
 * const p = new Float64Array([0, 1]), q = new Float64Array([0.5, 0.5]);
 * assert.equal(kseqSelectReference(p, q, [1], [0.99, 0.3]).token, 1);
 * ```
 */
export function kseqSelectReference(
  p: Probs,
  q: Probs,
  candidates: ArrayLike<number>,
  uniforms: ArrayLike<number>,
  solution?: RhoSolution,
): Selection & RhoSolution {
  checkPair(p, q);
  checkCandidates(candidates, uniforms, p.length);
  const k = candidates.length;
  const sol = solution ?? solveRhoReference(p, q, k);
  for (let i = 0; i < k; i++) {
    const x = candidates[i];
    if (uniforms[i] * sol.rho * q[x] < p[x]) return { token: x, draftIndex: i, ...sol };
  }
  const token = inverseCdf(residualReference(p, q, k, sol), uniforms[k]);
  return { token, draftIndex: -1, ...sol };
}

/**
 * SpecInfer recursive rejection sampling (Miao et al. 2024). With replacement (i.i.d. candidates):
 * accept x_i iff `u_i·q(x_i) < p_i(x_i)`, else `p_{i+1} = norm(max(p_i − q, 0))`. Without
 * replacement, x_i was drawn from q_i (q renormalised without x_1..x_{i−1}), so the test and the
 * residual use q_i. After k rejections, draw p_{k+1} with `uniforms[k]`.
 *
 * @throws {RangeError} bad rows, candidate ids or uniforms.
 * @example
 * ```ts
 * import { specInferSelectReference } from "./reference.ts";
 * import assert from "node:assert/strict";
 * const p = new Float64Array([1, 0]), q = new Float64Array([0, 1]);
 * assert.deepEqual(specInferSelectReference(p, q, [1], [0.5, 0.5], false), { token: 0, draftIndex: -1 });
 * ```
 */
export function specInferSelectReference(
  p: Probs,
  q: Probs,
  candidates: ArrayLike<number>,
  uniforms: ArrayLike<number>,
  withoutReplacement: boolean,
): Selection {
  checkPair(p, q);
  checkCandidates(candidates, uniforms, p.length);
  const k = candidates.length;
  let target = normalised(p);
  const draft = normalised(q);
  for (let i = 0; i < k; i++) {
    const x = candidates[i];
    if (uniforms[i] * draft[x] < target[x]) return { token: x, draftIndex: i };
    const next = new Float64Array(target.length);
    let sum = 0;
    for (let y = 0; y < next.length; y++) {
      next[y] = Math.max(0, target[y] - draft[y]);
      sum += next[y];
    }
    if (sum > 0) {
      for (let y = 0; y < next.length; y++) next[y] /= sum;
      target = next;
    }
    if (withoutReplacement) {
      const left = 1 - draft[x];
      draft[x] = 0;
      if (left > 0) { for (let y = 0; y < draft.length; y++) draft[y] /= left; }
    }
  }
  return { token: inverseCdf(target, uniforms[k]), draftIndex: -1 };
}

/**
 * Draws `uniforms.length` ids from `probs` by inverse CDF, i.i.d. or without replacement.
 *
 * @throws {RangeError} bad row or uniforms, or more distinct draws than tokens with mass.
 * @example
 * ```ts
 * import { sampleReference } from "./reference.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual([...sampleReference(new Float64Array([0.5, 0.5]), [0.9, 0.9], true)], [1, 0]);
 * ```
 */
export function sampleReference(
  probs: Probs,
  uniforms: ArrayLike<number>,
  withoutReplacement = false,
): Int32Array {
  checkProbs(probs, "probs");
  checkUniforms(uniforms, uniforms.length, "sample");
  const out = new Int32Array(uniforms.length);
  const weights = Float64Array.from(probs);
  for (let i = 0; i < uniforms.length; i++) {
    const x = inverseCdf(weights, uniforms[i]);
    if (x < 0) {
      throw new RangeError(ABI_ERRORS.TooFew.message(uniforms.length, i));
    }
    out[i] = x;
    if (withoutReplacement) weights[x] = 0;
  }
  return out;
}

function normalised(x: Probs): Float64Array {
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += x[i];
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = x[i] / sum;
  return out;
}

/**
 * One full K-SEQ step from logits: warp both rows, then {@linkcode kseqSelectReference} (ρ*
 * solved, residual draw included). The oracle of `WasmKernel.kseqStep`; used by the kernel bench
 * and the differential tests only, so it is not part of {@linkcode Kernel}.
 *
 * @param targetLogits Target logits `[vocab]`.
 * @param draftLogits Draft logits `[vocab]`.
 * @param options The warp applied to both rows.
 * @param candidates Draft token ids, `k` of them.
 * @param uniforms `k + 1` numbers in [0, 1).
 * @returns The decision and the ρ*, β, acceptance it was made with.
 * @throws {TypeError} logits not Float32Array.
 * @throws {RangeError} bad logits or options, vocab mismatch, bad candidates or uniforms.
 * @example Both candidates rejected: the token is drawn from the residual
 * ```ts
 * import { kseqStepReference } from "./reference.ts";
 * import assert from "node:assert/strict";
 * const t = new Float32Array([3, 1, 0]), d = new Float32Array([1, 3, 0]);
 * assert.equal(kseqStepReference(t, d, { temperature: 1 }, [1, 1], [0.9, 0.9, 0.1]).draftIndex, -1);
 * ```
 */
export function kseqStepReference(
  targetLogits: Float32Array,
  draftLogits: Float32Array,
  options: WarpOptions,
  candidates: ArrayLike<number>,
  uniforms: ArrayLike<number>,
): Selection & RhoSolution {
  const p = warpReference(targetLogits, options);
  const q = warpReference(draftLogits, options);
  return kseqSelectReference(p, q, candidates, uniforms);
}

/**
 * The reference as a {@linkcode Kernel}: float64, readable, slow.
 *
 * @example
 * ```ts
 * import { referenceKernel } from "./reference.ts";
 * const p = referenceKernel.warp(new Float32Array([0, 1, 2]));
 * let total = 0;
 * for (const x of p) total += x;
 * console.assert(Math.abs(total - 1) < 1e-12);
 * ```
 */
export const referenceKernel: Kernel = {
  name: "reference",
  warp: warpReference,
  solveRho: solveRhoReference,
  residual: residualReference,
  kseqSelect: kseqSelectReference,
  specInferSelect: specInferSelectReference,
  sample: sampleReference,
};
