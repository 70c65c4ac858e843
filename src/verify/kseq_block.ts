/**
 * K-SEQ block verification (`kseq-block`): block verification (Sun et al., ICLR 2025) lifted to the
 * tree of k i.i.d. drafts, with SpecTr's K-SEQ (Sun et al., NeurIPS 2023) deciding between the
 * children of a node. Multi-draft block verification in the spirit of GBV (Thomas & Pal, arXiv
 * 2602.16961) and SpecTr-GBV (arXiv 2604.25925); the rule and its proof here are this project's own.
 *
 * The drafts form a tree: a node is a prefix of the block, its survivors S the drafts that start
 * with it, its children the distinct depth-d tokens of S. Every node n is visited with a weight
 * w ∈ [0, 1] (the root with 1), and the visit T(n, w) either *keeps* n or fails:
 *
 * - at depth L (the end of the drafts): keep n iff u < w;
 * - else, with p, q the target and draft rows at n and k' = |S| candidates X₁…X_k' (the depth-d
 *   tokens of S, i.i.d. from q): ρ = the smallest ρ in [1, k'] with 1 − (1 − β(ρ))^k' ≤ ρ·β(ρ),
 *   where β(ρ) = Σₓ min(q(x), w·p(x)/ρ) (K-SEQ's ρ* for the sub-normalised target w·p);
 *   a(x) = min(1, w·p(x)/(ρ·q(x))); for each distinct token y, P_y = Σ_{j: Xⱼ = y} a(y)·Π_{i<j}(1 − a(Xᵢ))
 *   (the probability that K-SEQ's first accepted candidate is a y); the children are visited in
 *   order of first appearance, child y with weight P_y / (1 − Σ of the P of the children before it),
 *   and the first child kept keeps n; when none is, n is kept (stopping there) with probability
 *   h = (w − A)/(1 − A), A = 1 − (1 − β)^k'.
 *
 * The block outputs the path to the deepest kept node m, then one token: a draw from p at m when m
 * is at depth L (the bonus), else from the residual max(0, w·p − (A/β)·min(q, w·p/ρ)) at m.
 *
 * Exactness, by induction from depth L up (for any w, any number of survivors): T(n, w) keeps n with
 * probability exactly w (over the drafts below n and the uniforms), and given that it does, the next
 * output token is distributed as p at n and everything after it is exact. At depth L this is the
 * bonus draw. Above: given X, the visits make child y the one kept with probability exactly P_y
 * (the weights telescope), so over X it is kept with probability E[P_y] = min(q(y), w·p(y)/ρ)·A/β
 * (≤ w·p(y) by the choice of ρ), some child with probability A, and n with A + (1 − A)·h = w; the
 * next token is y with probability E[P_y] + (1 − A)·h·residual(y)/(w − A) = E[P_y] + residual(y) =
 * w·p(y), i.e. p(y) given that n is kept; after a child y the rest is exact by induction, after the
 * residual draw the next block starts from the exact prefix. With w = 1 at the root the root is
 * always kept, so every block outputs at least one token and each output token is distributed as p
 * given the ones before it.
 *
 * Special cases: k = 1 is block verification (ρ = 1, the child's weight min(1, w·p/q), h = Z/(Z + 1 − w));
 * L = 1 is K-SEQ. Against token-level K-SEQ (the level walk, which restarts every kept node at
 * weight 1), the weights carry what a rejected prefix leaves over: a child visited with weight w < 1
 * gets ρ(w) ≥ ρ(1) (feasibility of ρ is monotone in w), so E[P_y] = min(ρ(w)·q(y), w·p(y)) ≥
 * w × K-SEQ's. Exact enumeration over 300 random (tree, k, L) cases (src/verify/kseq_block_test.ts;
 * about 2,400 more while developing it, V ≤ 8) never found a block shorter in expectation than K-SEQ's, but
 * that is not proven in general (for k = 1 it is: block verification ≥ sd).
 *
 * Cost: a visited node with k' ≥ 2 survivors solves ρ in three passes over the vocabulary
 * (O(V + m) expected, m = ratios w·p/q inside (1, k')); a node with one survivor needs one pass, and
 * only when its stop test is reached. Each visited node reads the target row of its first survivor,
 * and a block visits at most k·L + 1 nodes (the level walk: one per depth), so on a 49,152-token
 * vocabulary a block that backtracks through every node costs a few ms (measured 1.9 ms for k = 1,
 * L = 4, 3.6–3.9 ms for k = 2, L = 4 and k = 4, L = 3 with wasm-warped rows; K-SEQ's walk 0.3–0.6 ms).
 *
 * Uniforms, in visiting order (depth first, children by first appearance): one per depth-L test,
 * one per stop test (u < h) of a node whose children all failed, except the root's (certain); a node
 * visited with weight 0 draws none; then one for the final draw.
 *
 * @module
 */

import type { Kernel, Probs } from "../kernel/types.ts";
import type { Random } from "../random.ts";
import type { BlockProposal, BlockResult, BlockScores, Verifier } from "./types.ts";

/** One node's K-SEQ solution for the sub-normalised target w·p: ρ, β(ρ) and A = 1 − (1 − β)^k. */
export interface WeightedRho {
  /** The smallest feasible ρ in [1, k] (to float precision, never below it). */
  rho: number;
  /** β(ρ) = Σₓ min(q(x), w·p(x)/ρ). */
  beta: number;
  /** A = 1 − (1 − β)^k: the probability that one of k i.i.d. candidates is accepted. */
  acceptance: number;
}

function oneMinusPower(beta: number, k: number): number {
  // 1 − (1 − β)^k without cancellation for small β.
  return beta >= 1 ? 1 : -Math.expm1(k * Math.log1p(-beta));
}

/** β(ρ) = Σ min(q, w·p/ρ), summed in one pass. */
function betaAt(p: Probs, q: Probs, w: number, rho: number): number {
  let beta = 0;
  for (let x = 0; x < p.length; x++) {
    const t = (w * p[x]) / rho;
    beta += t < q[x] ? t : q[x];
  }
  return beta;
}

/** Scratch for {@linkcode solveWeightedRho}: ratio, q and w·p of the tokens whose ratio is inside (1, k). */
let scratch = new Float64Array(0);

/**
 * K-SEQ's ρ* for the sub-normalised target w·p: the smallest ρ in [1, k] with
 * 1 − (1 − β(ρ))^k ≤ ρ·β(ρ), β(ρ) = Σₓ min(q(x), w·p(x)/ρ). β is piecewise of the form C + D/ρ with
 * breakpoints at the ratios w·p(x)/q(x), and the condition is monotone in ρ, so the segment between
 * two consecutive breakpoints that holds the root is found by quickselect-style partitioning of the
 * m breakpoints inside (1, k) (expected O(m), each step testing the condition at a pivot with the
 * sums of the resolved sides), then the root is bisected inside it in closed form: O(V + m) expected,
 * three passes over the vocabulary. The ρ returned is the upper end of the bisection, feasible up to
 * rounding. With w = 1 this is the kernels' `solveRho`.
 *
 * @param p Target row (sums to 1).
 * @param q Draft row (sums to 1).
 * @param w Weight in [0, 1].
 * @param k Candidates, an integer ≥ 1.
 * @returns ρ, β(ρ) and A = 1 − (1 − β(ρ))^k.
 * @throws {RangeError} w outside [0, 1], k not an integer ≥ 1, rows of different lengths.
 * @example One candidate: ρ = 1 and β = Σ min(q, w·p)
 * ```ts
 * import { solveWeightedRho } from "./kseq_block.ts";
 * const p = Float64Array.of(0.5, 0.5), q = Float64Array.of(0.9, 0.1);
 * const { rho, beta } = solveWeightedRho(p, q, 0.5, 1);
 * console.assert(rho === 1 && Math.abs(beta - 0.35) < 1e-12);
 * ```
 */
export function solveWeightedRho(p: Probs, q: Probs, w: number, k: number): WeightedRho {
  if (!(w >= 0 && w <= 1)) throw new RangeError(`Cannot solve rho: w must be in [0, 1], got ${w}`);
  if (!Number.isInteger(k) || k < 1) {
    throw new RangeError(`Cannot solve rho: k must be an integer >= 1, got ${k}`);
  }
  if (p.length !== q.length) {
    throw new RangeError(`Cannot solve rho: p and q have different lengths (${p.length} and ${q.length})`);
  }
  const solved = (rho: number): WeightedRho => {
    const beta = betaAt(p, q, w, rho);
    return { rho, beta, acceptance: oneMinusPower(beta, k) };
  };
  if (k === 1 || w === 0) return solved(1);
  // f(ρ) = ρ·β(ρ) − (1 − (1 − β(ρ))^k): non-decreasing in ρ, ≥ 0 at ρ = k (Bernoulli's inequality).
  const f = (rho: number, beta: number) => rho * beta - oneMinusPower(Math.min(1, beta), k);
  // One pass: ratio ≤ 1 always contributes w·p/ρ (sumP), ratio ≥ k always q (sumQ); the m tokens
  // in between go to the scratch as (ratio, q, w·p).
  if (scratch.length < 3 * p.length) scratch = new Float64Array(3 * p.length);
  const R = scratch;
  let sumQ = 0, sumP = 0, m = 0, insideQ = 0;
  for (let x = 0; x < p.length; x++) {
    const qx = q[x];
    if (!(qx > 0)) continue;
    const wp = w * p[x];
    const r = wp / qx;
    if (r <= 1) sumP += wp;
    else if (r >= k) sumQ += qx;
    else {
      R[3 * m] = r;
      R[3 * m + 1] = qx;
      R[3 * m + 2] = wp;
      insideQ += qx;
      m++;
    }
  }
  if (f(1, sumQ + insideQ + sumP) >= 0) return solved(1);
  // Invariant: the root lies in [lo, hi]; the window [a, b) holds the breakpoints strictly between
  // them; sumQ / sumP include every breakpoint above / below the window.
  let lo = 1, hi = k, a = 0, b = m;
  const swap = (i: number, j: number) => {
    for (let c = 0; c < 3; c++) {
      const t = R[3 * i + c];
      R[3 * i + c] = R[3 * j + c];
      R[3 * j + c] = t;
    }
  };
  while (b > a) {
    const pivot = R[3 * ((a + b) >> 1)];
    // Partition [a, b) into ratio < pivot | ratio ≥ pivot, summing both sides.
    let i = a, belowP = 0, aboveQ = 0;
    for (let j = a; j < b; j++) {
      if (R[3 * j] < pivot) {
        belowP += R[3 * j + 2];
        swap(i, j);
        i++;
      } else aboveQ += R[3 * j + 1];
    }
    // At ρ = pivot a token with ratio = pivot contributes q = w·p/ρ either way.
    if (f(pivot, sumQ + aboveQ + (sumP + belowP) / pivot) >= 0) {
      hi = pivot;
      sumQ += aboveQ;
      b = i;
    } else {
      lo = pivot;
      // Move the tokens at the pivot (and below) out: those ≥ pivot stay in the window only if > pivot.
      sumP += belowP;
      let k2 = i;
      for (let j = i; j < b; j++) {
        if (R[3 * j] === pivot) {
          sumP += R[3 * j + 2];
          swap(k2, j);
          k2++;
        }
      }
      a = k2;
    }
  }
  // On [lo, hi] no breakpoint lies strictly inside: β(ρ) = sumQ + sumP/ρ.
  for (let i = 0; i < 200 && hi - lo > 1e-15 * hi; i++) {
    const mid = 0.5 * (lo + hi);
    if (f(mid, sumQ + sumP / mid) >= 0) hi = mid;
    else lo = mid;
  }
  return solved(hi);
}

/** The final draw of a block: at which depth, from which row of which draft. */
interface Kept {
  depth: number;
  row: number;
  /** The residual's parameters at that node (absent: the bonus draw from p at depth L). */
  residual?: { w: number; rho: number; scale: number };
}

/**
 * The residual row at a node: max(0, w·p − scale·min(q, w·p/ρ)), scale = A/β (unnormalised; the
 * kernel's sampler normalises).
 */
function weightedResidual(p: Probs, q: Probs, w: number, rho: number, scale: number): Float64Array {
  const out = new Float64Array(p.length);
  for (let x = 0; x < p.length; x++) {
    const wp = w * p[x];
    const t = wp / rho;
    const d = wp - scale * (t < q[x] ? t : q[x]);
    out[x] = d > 0 ? d : 0;
  }
  return out;
}

/**
 * E[tokens | block] of K-SEQ with block verification over the fixed drafts: for each visit,
 * [P(kept), E[accepted below the node · 1{kept}]], computed with the same weighted ρ and stopping
 * rule as {@linkcode kseqBlock}'s walk.
 */
export function kseqBlockExpectedTokens(
  _kernel: Kernel,
  proposal: BlockProposal,
  scores: BlockScores,
): number {
  const { draftLength: L, tokens: drafts, probs: qRows } = proposal;
  const visit = (depth: number, survivors: number[], w: number): [number, number] => {
    if (!(w > 0)) return [0, 0];
    if (depth === L) return [w, 0];
    const first = survivors[0], p = scores.probs(first, depth), q = qRows[first][depth];
    const { rho, acceptance } = solveWeightedRho(p, q, Math.min(1, w), survivors.length);
    const mass = new Map<number, number>();
    let none = 1;
    for (const r of survivors) {
      const y = drafts[r][depth], a = Math.min(1, (w * p[y]) / (rho * q[y]));
      mass.set(y, (mass.get(y) ?? 0) + none * a);
      none *= 1 - a;
    }
    let reach = 1, keep = 0, below = 0, used = 0;
    for (const [y, py] of mass) {
      const weight = used < 1 ? Math.min(1, py / (1 - used)) : 0;
      used += py;
      const [k, g] = visit(depth + 1, survivors.filter((r) => drafts[r][depth] === y), weight);
      keep += reach * k;
      below += reach * (k + g);
      reach *= 1 - k;
    }
    const h = depth === 0 || w >= 1 || acceptance >= 1 ? 1 : Math.max(0, (w - acceptance) / (1 - acceptance));
    return [keep + reach * h, below];
  };
  return 1 + visit(0, drafts.map((_, r) => r), 1)[1];
}

/**
 * K-SEQ block verification over k i.i.d. drafts (1 ≤ k ≤ 1024; see the module doc for the rule and
 * its proof).
 *
 * @example Identical target and draft keep a whole draft
 * ```ts
 * import { kseqBlock } from "./kseq_block.ts";
 * import { TargetScores } from "../decode/scorer.ts";
 * import { referenceKernel } from "../kernel/reference.ts";
 * import { Random } from "../random.ts";
 * const q = new Float64Array([0.5, 0.5]);
 * const proposal = { k: 2, draftLength: 2, tokens: [Int32Array.of(1, 0), Int32Array.of(0, 0)], probs: [[q, q], [q, q]] };
 * const scores = new TargetScores(referenceKernel, {}, new Float32Array(12), 2, 3, 2);
 * const block = kseqBlock.verifyBlock(referenceKernel, proposal, scores, new Random(3));
 * console.assert(block.accepted === 2 && block.tokens.length === 3 && block.row === 0);
 * ```
 */
export const kseqBlock: Verifier = Object.freeze({
  name: "kseq-block",
  draftSampling: "iid",
  maxCandidates: 1024,
  expectedTokens: kseqBlockExpectedTokens,
  verifyBlock(kernel: Kernel, proposal: BlockProposal, scores: BlockScores, random: Random): BlockResult {
    const { k, draftLength: L, tokens: drafts, probs: draftProbs } = proposal;
    if (!Number.isInteger(k) || k < 1 || k > 1024) {
      throw new RangeError(`Cannot verify with kseq-block: k must be an integer in [1, 1024], got ${k}`);
    }
    if (!Number.isInteger(L) || L < 0) {
      throw new RangeError(`Cannot verify with kseq-block: draftLength must be an integer >= 0, got ${L}`);
    }
    if (drafts.length !== k || draftProbs.length !== k) {
      throw new RangeError(
        `Cannot verify with kseq-block: expected ${k} drafts and their q rows, got ${drafts.length} and ${draftProbs.length}`,
      );
    }
    const visit = (depth: number, survivors: number[], w: number): Kept | undefined => {
      if (!(w > 0)) return undefined;
      const first = survivors[0];
      if (depth === L) return random.next() < w ? { depth, row: first } : undefined;
      const p = scores.probs(first, depth);
      const q = draftProbs[first][depth];
      const kk = survivors.length;
      // ρ = 1 for one survivor (block verification), where β is needed only for the stop test.
      const solution = kk > 1 ? solveWeightedRho(p, q, Math.min(1, w), kk) : undefined;
      const rho = solution?.rho ?? 1;
      // P_y for each distinct candidate token, in order of first appearance.
      const groups: number[] = [];
      const mass = new Map<number, number>();
      let none = 1;
      for (const r of survivors) {
        const y = drafts[r][depth];
        const a = q[y] > 0 ? Math.min(1, (w * p[y]) / (rho * q[y])) : 0;
        const before = mass.get(y);
        if (before === undefined) groups.push(y);
        mass.set(y, (before ?? 0) + none * a);
        none *= 1 - a;
      }
      let used = 0;
      for (const y of groups) {
        const py = mass.get(y)!;
        const weight = used < 1 ? Math.min(1, py / (1 - used)) : 0;
        used += py;
        const kept = visit(depth + 1, survivors.filter((r) => drafts[r][depth] === y), weight);
        if (kept) return kept;
      }
      // No child kept: stop here with probability h = (w − A)/(1 − A) (1 at the root, where w = 1).
      // One survivor: A = β = Σ min(q, w·p) and the residual's scale A/β is 1.
      const { beta, acceptance } = solution ?? { beta: 1, acceptance: w >= 1 ? 1 : betaAt(p, q, w, 1) };
      const stop = depth === 0 || w >= 1 || acceptance >= 1
        ? true
        : random.next() < (w - acceptance) / (1 - acceptance);
      if (!stop) return undefined;
      const scale = solution ? (beta > 0 ? acceptance / beta : 0) : 1;
      return { depth, row: first, residual: { w, rho, scale } };
    };
    const all: number[] = [];
    for (let r = 0; r < k; r++) all.push(r);
    const kept = visit(0, all, 1)!; // the root is always kept
    const { depth, row } = kept;
    const tokens = Array.from(drafts[row].subarray(0, depth));
    const u = [random.next()];
    const p = scores.probs(row, depth);
    if (!kept.residual) tokens.push(kernel.sample(p, u)[0]);
    else {
      const { w, rho, scale } = kept.residual;
      const residual = weightedResidual(p, draftProbs[row][depth], w, rho, scale);
      let total = 0;
      for (let x = 0; x < residual.length; x++) total += residual[x];
      // The residual has mass w − A > 0 whenever the stop can happen; p only guards rounding.
      tokens.push(kernel.sample(total > 0 ? residual : p, u)[0]);
    }
    return { tokens, accepted: depth, reached: depth === L ? L : depth + 1, row };
  },
});
