/**
 * K-SEQ block verification (src/verify/kseq_block.ts).
 *
 * 1. The rule, by exact enumeration: an independent re-derivation of the rule's outcome
 *    probabilities (`exactKseqBlock`, written from the module doc with its own ρ solver, no code
 *    under test), summed over every set of k i.i.d. drafts a random row tree can produce, must be
 *    exact (each output token distributed as p given the ones before: error ≤ 1e-12), equal K-SEQ for
 *    L = 1 and block verification for k = 1, and accept at least as many tokens in expectation as the
 *    token-level K-SEQ walk (`exactKseqWalk`) on the same tree.
 * 2. The implementation: on fixed blocks, the outputs of `kseqBlock.verifyBlock` over N = 20,000 runs
 *    (fresh uniforms, fixed seeds) against the rule's exact outcome distribution. H0: the
 *    implementation follows the rule; G-test, family-wise α = 1e-3 Bonferroni over the blocks. Power
 *    check: the variant with independently kept children (tests/_wrong_verifiers.ts) is rejected on
 *    a block with four copies of one token.
 * 3. ρ for the weighted target, and edge cases.
 */

import assert from "node:assert/strict";
import { gTest } from "../../tests/_stats.ts";
import { kseqBlockIndependentChildren, kseqBlockRewritten } from "../../tests/_wrong_verifiers.ts";
import { referenceKernel } from "../kernel/reference.ts";
import type { Probs } from "../kernel/types.ts";
import { Random } from "../random.ts";
import { allDrafts, drawDrafts, exactnessError, RowTree, treeBlock } from "./_testing.ts";
import { kseqBlock, solveWeightedRho } from "./kseq_block.ts";
import type { Verifier } from "./types.ts";

const kernel = referenceKernel;

/** ρ for target w·p and k i.i.d. candidates by plain bisection (the smallest feasible ρ in [1, k]). */
function rhoByBisection(p: Probs, q: Probs, w: number, k: number): number {
  const f = (rho: number) => {
    let beta = 0;
    for (let x = 0; x < p.length; x++) beta += Math.min(q[x], (w * p[x]) / rho);
    return rho * beta - (1 - (1 - beta) ** k);
  };
  if (k === 1 || f(1) >= 0) return 1;
  let lo = 1, hi = k;
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (f(mid) >= 0) hi = mid;
    else lo = mid;
  }
  return hi;
}

type Outcomes = Map<string, number>;

function add(out: Outcomes, key: string, probability: number): void {
  if (probability > 0) out.set(key, (out.get(key) ?? 0) + probability);
}

/**
 * The rule's exact distribution of block outputs (token sequences "t1,t2,…") on fixed drafts, from
 * the module doc: T(n, w) keeps n with probability `keep`; `out` is the joint probability of keeping
 * n and each continuation.
 */
function exactKseqBlock(tree: RowTree, drafts: number[][], independentChildren = false): Outcomes {
  const L = drafts[0].length;
  const visit = (prefix: number[], survivors: number[], w: number): { keep: number; out: Outcomes } => {
    const out: Outcomes = new Map();
    const p = tree.p(prefix), depth = prefix.length;
    if (w <= 0) return { keep: 0, out };
    if (depth === L) {
      for (let y = 0; y < tree.vocab; y++) add(out, `${y}`, w * p[y]);
      return { keep: w, out };
    }
    const q = tree.q(prefix), k = survivors.length;
    const rho = rhoByBisection(p, q, w, k);
    let beta = 0;
    for (let x = 0; x < p.length; x++) beta += Math.min(q[x], (w * p[x]) / rho);
    const acceptance = 1 - (1 - beta) ** k;
    const a = (y: number) => Math.min(1, (w * p[y]) / (rho * q[y]));
    // P_y: K-SEQ's probability that the first accepted candidate (in draft order) is a y.
    const first = new Map<number, number>();
    let none = 1;
    for (const r of survivors) {
      const y = drafts[r][depth];
      first.set(y, (first.get(y) ?? 0) + none * a(y));
      none *= 1 - a(y);
    }
    let reach = 1, keep = 0, used = 0;
    for (const [y, py] of first) { // Map order = order of first appearance
      const copies = survivors.filter((r) => drafts[r][depth] === y).length;
      const weight = independentChildren
        ? 1 - (1 - a(y)) ** copies // the mistake of kseqBlockIndependentChildren
        : used < 1
        ? Math.min(1, py / (1 - used))
        : 0;
      const child = visit([...prefix, y], survivors.filter((r) => drafts[r][depth] === y), weight);
      used += py;
      for (const [s, v] of child.out) add(out, `${y},${s}`, reach * v);
      keep += reach * child.keep;
      reach *= 1 - child.keep;
    }
    const h = depth === 0 || acceptance >= 1 ? 1 : Math.max(0, (w - acceptance) / (1 - acceptance));
    const residual = p.map((px, x) =>
      Math.max(0, w * px - (acceptance / beta) * Math.min(q[x], (w * px) / rho))
    );
    const mass = residual.reduce((s, v) => s + v, 0);
    for (let y = 0; y < tree.vocab; y++) add(out, `${y}`, reach * h * (mass > 0 ? residual[y] / mass : p[y]));
    return { keep: keep + reach * h, out };
  };
  return visit([], drafts.map((_, r) => r), 1).out;
}

/** Token-level K-SEQ's walk (src/verify/walk.ts over kseq) on fixed drafts: exact outcome distribution. */
function exactKseqWalk(tree: RowTree, drafts: number[][]): Outcomes {
  const L = drafts[0].length;
  const walk = (prefix: number[], survivors: number[]): Outcomes => {
    const out: Outcomes = new Map();
    const p = tree.p(prefix), depth = prefix.length;
    if (depth === L) {
      for (let y = 0; y < tree.vocab; y++) add(out, `${y}`, p[y]);
      return out;
    }
    const q = tree.q(prefix), rho = rhoByBisection(p, q, 1, survivors.length);
    let none = 1;
    for (const r of survivors) {
      const y = drafts[r][depth], a = Math.min(1, p[y] / (rho * q[y]));
      const next = walk([...prefix, y], survivors.filter((s) => drafts[s][depth] === y));
      for (const [s, v] of next) add(out, `${y},${s}`, none * a * v);
      none *= 1 - a;
    }
    const residual = p.map((px, x) => Math.max(0, px - rho * q[x]));
    const mass = residual.reduce((s, v) => s + v, 0);
    for (let y = 0; y < tree.vocab; y++) add(out, `${y}`, none * (mass > 0 ? residual[y] / mass : p[y]));
    return out;
  };
  return walk([], drafts.map((_, r) => r));
}

/** Block verification's E[τ | draft] in closed form (Sun et al.: P(τ ≥ i) = 1 − Π_{j ≥ i}(1 − h_j)). */
function blockMean(tree: RowTree, draft: number[]): number {
  const L = draft.length, h = new Array<number>(L + 1).fill(0);
  let w = 1;
  for (let i = 1; i <= L; i++) {
    const prefix = draft.slice(0, i - 1), x = draft[i - 1];
    w = Math.min(1, (w * tree.p(prefix)[x]) / tree.q(prefix)[x]);
    if (i < L) {
      const p = tree.p(draft.slice(0, i)), q = tree.q(draft.slice(0, i));
      let z = 0;
      for (let y = 0; y < p.length; y++) z += Math.max(0, w * p[y] - q[y]);
      h[i] = z + 1 - w > 0 ? z / (z + 1 - w) : 1;
    } else h[i] = w;
  }
  let mean = 0, allFail = 1;
  for (let i = L; i >= 1; i--) {
    allFail *= 1 - h[i];
    mean += 1 - allFail;
  }
  return mean;
}

/** Mean accepted tokens of an outcome distribution (each output has accepted + 1 tokens). */
function meanAccepted(out: Outcomes): number {
  let m = 0;
  for (const [key, v] of out) m += v * (key.split(",").length - 1);
  return m;
}

function mix(into: Outcomes, from: Outcomes, weight: number): void {
  for (const [key, v] of from) add(into, key, weight * v);
}

Deno.test("the rule by exact enumeration: exact on random trees, = K-SEQ for L = 1, = block verification for k = 1, and ≥ the K-SEQ walk", () => {
  const shapes: [number, number][] = [[1, 3], [2, 1], [3, 1], [2, 2], [3, 2], [4, 2], [2, 3], [3, 3]];
  let cases = 0, worstError = 0, worstGain = Infinity, gainSum = 0, multiCases = 0;
  for (let seed = 0; seed < 40; seed++) {
    const vocab = 2 + (seed % 2);
    const tree = new RowTree(vocab, 3000 + seed, { scale: [1, 2, 3][seed % 3], mask: seed % 4 ? 0.2 : 0 });
    for (const [k, L] of shapes) {
      if (vocab ** (k * L) > 8000) continue;
      const rule: Outcomes = new Map(), walk: Outcomes = new Map();
      let block = 0;
      for (const { drafts, probability } of allDrafts(tree, k, L)) {
        mix(rule, exactKseqBlock(tree, drafts), probability);
        mix(walk, exactKseqWalk(tree, drafts), probability);
        if (k === 1) block += probability * blockMean(tree, drafts[0]);
      }
      const error = Math.max(exactnessError(tree, rule), exactnessError(tree, walk));
      worstError = Math.max(worstError, error);
      assert.ok(error < 1e-12, `seed ${seed} k=${k} L=${L}: exactness error ${error}`);
      const ours = meanAccepted(rule), kseq = meanAccepted(walk);
      if (L === 1) assert.ok(Math.abs(ours - kseq) < 1e-12, `L = 1 must be K-SEQ: ${ours} vs ${kseq}`);
      if (k === 1) {
        assert.ok(Math.abs(ours - block) < 1e-12, `k = 1 must be block verification: ${ours} vs ${block}`);
      }
      assert.ok(ours >= kseq - 1e-12, `seed ${seed} k=${k} L=${L}: ${ours} < K-SEQ walk ${kseq}`);
      cases++;
      worstGain = Math.min(worstGain, ours - kseq);
      if (k > 1 && L > 1 && kseq > 0) {
        gainSum += ours / kseq - 1;
        multiCases++;
      }
    }
  }
  console.log(
    `  ${cases} (tree, k, L) cases: exactness error ≤ ${
      worstError.toExponential(2)
    }, min E[kseq-block] − E[kseq] = ${worstGain.toExponential(2)}, mean gain over K-SEQ ${
      (100 * gainSum / multiCases).toFixed(2)
    } % (k ≥ 2, L ≥ 2)`,
  );
});

/** Counts of `verifier`'s outputs on one fixed block over `n` runs, with the rule's probabilities. */
function outcomeTest(verifier: Verifier, tree: RowTree, drafts: number[][], n: number, seed: number) {
  const exact = exactKseqBlock(tree, drafts);
  const keys = [...exact.keys()];
  const index = new Map(keys.map((key, i) => [key, i]));
  const counts = new Float64Array(keys.length + 1); // last cell: outputs the rule cannot give
  const { proposal, scores } = treeBlock(tree, drafts);
  const random = new Random(seed);
  for (let i = 0; i < n; i++) {
    const result = verifier.verifyBlock(kernel, proposal, scores, random);
    assert.equal(result.tokens.length, result.accepted + 1);
    assert.deepEqual(result.tokens.slice(0, result.accepted), drafts[result.row].slice(0, result.accepted));
    counts[index.get(result.tokens.join(",")) ?? keys.length]++;
  }
  const total = [...exact.values()].reduce((a, b) => a + b, 0);
  return gTest(counts, [...keys.map((key) => exact.get(key)! / total), 0]);
}

const fixedBlocks: { vocab: number; seed: number; drafts?: number[][]; k: number; L: number }[] = [
  { vocab: 3, seed: 1, k: 2, L: 2 },
  { vocab: 3, seed: 2, k: 3, L: 3 },
  { vocab: 4, seed: 3, k: 4, L: 2 },
  { vocab: 4, seed: 4, k: 2, L: 3 },
  { vocab: 3, seed: 5, k: 1, L: 3 },
  { vocab: 3, seed: 6, k: 3, L: 1 },
  { vocab: 3, seed: 7, drafts: [[0, 1, 2], [0, 1, 0], [0, 2, 2], [1, 0, 0]], k: 4, L: 3 },
  { vocab: 3, seed: 8, drafts: [[2, 2], [2, 2], [2, 0]], k: 3, L: 2 },
];
const BLOCK_THRESHOLD = 1e-3 / fixedBlocks.length;

for (const b of fixedBlocks) {
  Deno.test(`kseqBlock.verifyBlock follows the rule on a fixed block (V=${b.vocab}, k=${b.k}, L=${b.L}${b.drafts ? `, drafts ${JSON.stringify(b.drafts)}` : ""})`, () => {
    const tree = new RowTree(b.vocab, 4000 + b.seed, { mask: b.drafts ? 0 : 0.1 }); // hand-picked drafts: all possible
    const drafts = b.drafts ?? drawDrafts(tree, b.k, b.L, new Random(4100 + b.seed));
    const { pValue, statistic, df, impossible } = outcomeTest(kseqBlock, tree, drafts, 20_000, 4200 + b.seed);
    console.log(
      `  drafts ${JSON.stringify(drafts)}: p = ${pValue.toExponential(3)} (G = ${
        statistic.toFixed(2)
      }, df = ${df})`,
    );
    assert.equal(impossible, 0);
    assert.ok(pValue >= BLOCK_THRESHOLD, `p = ${pValue} < ${BLOCK_THRESHOLD}`);
  });
}

Deno.test("power check: children kept independently are rejected on a block with four copies of one token", () => {
  // Same N, same threshold. Four drafts share their first token 0, with a 1 among them, where
  // P(the first accepted candidate is a 0) and 1 − (1 − a(0))^4 differ. (Block and tree chosen, among
  // 1,200 tried, where the rule's exact outcome distribution moves most under the mistake.)
  const tree = new RowTree(3, 4569, { mask: 0, scale: 1.5 });
  const drafts = [[0, 1], [1, 1], [0, 0], [0, 2], [0, 1]];
  const right = exactKseqBlock(tree, drafts), wrong = exactKseqBlock(tree, drafts, true);
  let tv = 0;
  for (const key of new Set([...right.keys(), ...wrong.keys()])) {
    tv += Math.abs((right.get(key) ?? 0) - (wrong.get(key) ?? 0)) / 2;
  }
  const { pValue } = outcomeTest(kseqBlockIndependentChildren, tree, drafts, 20_000, 4301);
  console.log(
    `  p = ${pValue.toExponential(3)} (total variation of the mistaken rule's outcomes: ${tv.toFixed(3)})`,
  );
  assert.ok(pValue < BLOCK_THRESHOLD, `p = ${pValue}: the test cannot see this mistake`);
});

Deno.test("the re-implementation behind the wrong variants makes the shipped verifier's decisions", () => {
  for (let seed = 0; seed < 300; seed++) {
    const tree = new RowTree(4, 4400 + seed);
    const k = 1 + (seed % 4), L = seed % 4;
    const block = treeBlock(tree, L ? drawDrafts(tree, k, L, new Random(seed)) : [[]]);
    const a = kseqBlock.verifyBlock(kernel, block.proposal, block.scores, new Random(seed));
    const b = kseqBlockRewritten.verifyBlock(kernel, block.proposal, block.scores, new Random(seed));
    assert.deepEqual(a, b);
  }
});

Deno.test("solveWeightedRho: the kernels' ρ* at w = 1, feasible and smallest for any w", () => {
  const rng = new Random(5);
  const row = (vocab: number) => {
    const r = Float64Array.from({ length: vocab }, () => (rng.next() < 0.2 ? 0 : Math.exp(2 * rng.normal())));
    if (r.every((x) => x === 0)) r[0] = 1;
    const sum = r.reduce((a, b) => a + b, 0);
    return r.map((x) => x / sum);
  };
  for (let i = 0; i < 1000; i++) {
    const vocab = 2 + Math.floor(rng.next() * 40), k = 1 + Math.floor(rng.next() * 8);
    const p = row(vocab), q = row(vocab), w = i % 5 === 0 ? 1 : rng.next();
    const s = solveWeightedRho(p, q, w, k);
    const f = (rho: number) => {
      let beta = 0;
      for (let x = 0; x < vocab; x++) beta += Math.min(q[x], (w * p[x]) / rho);
      return { beta, slack: rho * beta - (1 - (1 - beta) ** k) };
    };
    assert.ok(s.rho >= 1 && s.rho <= k, `ρ = ${s.rho} outside [1, ${k}]`);
    assert.ok(Math.abs(s.beta - f(s.rho).beta) < 1e-12);
    assert.ok(Math.abs(s.acceptance - (1 - (1 - s.beta) ** k)) < 1e-12);
    assert.ok(f(s.rho).slack >= -1e-12, `infeasible: ${f(s.rho).slack}`);
    if (s.rho > 1 + 1e-7) assert.ok(f(s.rho * (1 - 1e-7)).slack < 0, "not the smallest feasible ρ");
    if (w === 1) {
      const reference = kernel.solveRho(p, q, k).rho;
      assert.ok(Math.abs(s.rho - reference) <= 1e-9 * reference, `${s.rho} vs solveRho ${reference}`);
    }
  }
  assert.equal(solveWeightedRho(Float64Array.of(1, 0), Float64Array.of(0.5, 0.5), 0.3, 1).rho, 1);
  assert.throws(() => solveWeightedRho(Float64Array.of(1), Float64Array.of(1), 1.5, 2), RangeError);
  assert.throws(() => solveWeightedRho(Float64Array.of(1), Float64Array.of(1), 1, 0), RangeError);
  assert.throws(() => solveWeightedRho(Float64Array.of(1), Float64Array.of(0.5, 0.5), 1, 2), RangeError);
});

Deno.test("edge cases: p = q keeps a whole draft, the first one", () => {
  const random = new Random(51);
  for (let i = 0; i < 300; i++) {
    const tree = new RowTree(4, 5000 + i, { same: true });
    const k = 1 + (i % 4), L = 1 + (i % 3);
    const drafts = drawDrafts(tree, k, L, random);
    const { proposal, scores } = treeBlock(tree, drafts);
    const result = kseqBlock.verifyBlock(kernel, proposal, scores, random);
    assert.equal(result.accepted, L);
    assert.equal(result.row, 0);
    assert.deepEqual(result.tokens.slice(0, L), drafts[0]);
  }
});

Deno.test("edge cases: disjoint supports accept nothing and draw from p", () => {
  const p = Float64Array.of(0.3, 0.7, 0, 0), q = Float64Array.of(0, 0, 0.6, 0.4);
  const random = new Random(61);
  const counts = new Float64Array(4);
  for (let i = 0; i < 20_000; i++) {
    const drafts = [0, 1, 2].map(() => [2 + (random.next() < 0.4 ? 1 : 0), 2]);
    const proposal = {
      k: 3,
      draftLength: 2,
      tokens: drafts.map((d) => Int32Array.from(d)),
      probs: drafts.map(() => [q, q]),
    };
    const result = kseqBlock.verifyBlock(kernel, proposal, { probs: () => p }, random);
    assert.equal(result.accepted, 0);
    counts[result.tokens[0]]++;
  }
  const { pValue } = gTest(counts, p);
  assert.ok(pValue >= 1e-4, `p = ${pValue}`);
});

Deno.test("edge cases: L = 0 is a plain draw from p", () => {
  const p = Float64Array.of(0.1, 0.2, 0.3, 0.4);
  const random = new Random(71);
  const counts = new Float64Array(4);
  for (let i = 0; i < 20_000; i++) {
    const proposal = { k: 1, draftLength: 0, tokens: [new Int32Array(0)], probs: [[]] };
    const result = kseqBlock.verifyBlock(kernel, proposal, { probs: () => p }, random);
    assert.deepEqual([result.accepted, result.reached, result.row, result.tokens.length], [0, 0, 0, 1]);
    counts[result.tokens[0]]++;
  }
  const { pValue } = gTest(counts, p);
  assert.ok(pValue >= 1e-4, `p = ${pValue}`);
});

Deno.test("edge cases: bad k and mismatched drafts are RangeErrors", () => {
  const q = Float64Array.of(0.5, 0.5), scores = { probs: () => q };
  const bad = (k: number, rows: number) => ({
    k,
    draftLength: 1,
    tokens: Array.from({ length: rows }, () => Int32Array.of(0)),
    probs: Array.from({ length: rows }, () => [q]),
  });
  assert.throws(() => kseqBlock.verifyBlock(kernel, bad(0, 0), scores, new Random(1)), {
    name: "RangeError",
    message: /k must be an integer in \[1, 1024\], got 0/,
  });
  assert.throws(() => kseqBlock.verifyBlock(kernel, bad(2, 3), scores, new Random(1)), {
    name: "RangeError",
    message: /expected 2 drafts/,
  });
  assert.throws(() => kseqBlock.verifyBlock(kernel, bad(1025, 1025), scores, new Random(1)), RangeError);
});
