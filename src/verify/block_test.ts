/**
 * Block verification (src/verify/block.ts) against closed forms, token-level speculative sampling
 * (sd) on the same proposals, and edge cases.
 *
 * Statistical checks (fixed seeds, so the file is deterministic): a mean over N independent blocks
 * is compared with its exact expectation μ under H0 "the verifier follows the paper's rule", and
 * fails when |mean − μ| > 5σ/√N with σ the exact standard deviation of the accepted length (two-sided
 * normal tail 5.7e-7 per check); distributions of one output token are G-tests against p at
 * α = 1e-4 each. Expectations over drafts are computed exactly by enumerating every draft with its
 * probability, so "block ≥ sd" is an exact comparison, not a noisy one.
 */

import assert from "node:assert/strict";
import { gTest } from "../../tests/_stats.ts";
import { referenceKernel } from "../kernel/reference.ts";
import type { Probs } from "../kernel/types.ts";
import { Random } from "../random.ts";
import { allDrafts, drawDrafts, RowTree, treeBlock } from "./_testing.ts";
import { blockVerifier, blockWeights, residualMass } from "./block.ts";
import { sd } from "./sd.ts";
import type { BlockProposal, BlockScores, Verifier } from "./types.ts";

const kernel = referenceKernel;

/** A block whose every target row is `p` and every draft row `q` (a context-independent pair). */
function constantBlock(
  p: Probs,
  q: Probs,
  draft: number[],
): { proposal: BlockProposal; scores: BlockScores } {
  return {
    proposal: {
      k: 1,
      draftLength: draft.length,
      tokens: [Int32Array.from(draft)],
      probs: [draft.map(() => q)],
    },
    scores: { probs: () => p },
  };
}

/** Inverse-CDF draw from a row. */
function draw(row: Probs, u: number): number {
  let c = 0;
  for (let x = 0; x < row.length; x++) {
    c += row[x];
    if (row[x] > 0 && u < c) return x;
  }
  let x = row.length - 1;
  while (!(row[x] > 0)) x--;
  return x;
}

/**
 * P(τ ≥ i | draft) for i = 1..L (index i − 1) from the stopping probabilities h₁…h_L: τ is the last
 * i with uᵢ < hᵢ, so τ ≥ i iff some j ≥ i passes: 1 − Π_{j ≥ i}(1 − h_j).
 */
function atLeast(h: ArrayLike<number>, L: number): number[] {
  const out = new Array<number>(L).fill(0);
  let allFail = 1;
  for (let i = L; i >= 1; i--) {
    allFail *= 1 - h[i];
    out[i - 1] = 1 - allFail;
  }
  return out;
}

/** Block verification's E[τ | draft] and E[τ² | draft], from the shipped weights (h). */
function blockMoments(
  block: { proposal: BlockProposal; scores: BlockScores },
): { mean: number; square: number } {
  const { proposal, scores } = block;
  const L = proposal.draftLength, draft = proposal.tokens[0], qRows = proposal.probs[0];
  const pOf = Array.from({ length: L }, (_, i) => scores.probs(0, i)[draft[i]]);
  const qOf = Array.from({ length: L }, (_, i) => qRows[i][draft[i]]);
  const { h } = blockWeights(pOf, qOf, (i, wi) => residualMass(scores.probs(0, i), qRows[i], wi));
  const tail = atLeast(h, L);
  // E[τ] = Σᵢ P(τ ≥ i); E[τ²] = Σᵢ (2i − 1)·P(τ ≥ i).
  return {
    mean: tail.reduce((a, b) => a + b, 0),
    square: tail.reduce((a, b, i) => a + (2 * i + 1) * b, 0),
  };
}

/** sd's E[τ | draft] and E[τ² | draft]: P(τ ≥ i | draft) = Π_{j ≤ i} min(1, p_j(x_j)/q_j(x_j)). */
function sdMoments(
  block: { proposal: BlockProposal; scores: BlockScores },
): { mean: number; square: number } {
  const { proposal, scores } = block;
  let all = 1, mean = 0, square = 0;
  for (let i = 0; i < proposal.draftLength; i++) {
    const x = proposal.tokens[0][i];
    all *= Math.min(1, scores.probs(0, i)[x] / proposal.probs[0][i][x]);
    mean += all;
    square += (2 * i + 1) * all;
  }
  return { mean, square };
}

/** Mean accepted tokens of `verifier` over `blocks`, one fresh seeded Random per verifier. */
function meanAccepted(
  verifier: Verifier,
  blocks: Iterable<{ proposal: BlockProposal; scores: BlockScores }>,
  seed: number,
): { mean: number; n: number } {
  const random = new Random(seed);
  let sum = 0, n = 0;
  for (const { proposal, scores } of blocks) {
    const result = verifier.verifyBlock(kernel, proposal, scores, random);
    assert.equal(result.tokens.length, result.accepted + 1);
    sum += result.accepted;
    n++;
  }
  return { mean: sum / n, n };
}

// The paper's two-token example (Sun et al., ICLR 2025, §3): context-independent p = (1/3, 2/3),
// q = (2/3, 1/3), L = 2; tokens a = 0 (p/q = 1/2) and b = 1 (p/q = 2).
const toyP = Float64Array.of(1 / 3, 2 / 3);
const toyQ = Float64Array.of(2 / 3, 1 / 3);

Deno.test("the paper's toy in closed form: sd accepts 10/9 tokens per block, block verification 11/9", () => {
  // Written out by hand, without the code under test.
  // sd: each token is kept with probability β = Σ min(p, q) = 1/3 + 1/3 = 2/3, and the block keeps
  // the first i tokens with probability β^i, so E[τ] = β + β² = 2/3 + 4/9 = 10/9.
  //
  // Block verification: w₀ = 1, wᵢ = min(1, wᵢ₋₁·p(xᵢ)/q(xᵢ)); Z(w) = Σ max(0, w·p − q), so
  // Z(1) = 1/3 and Z(1/2) = 0; h₁ = Z(w₁)/(Z(w₁) + 1 − w₁), h₂ = w₂; P(τ ≥ 2) = h₂ and
  // P(τ ≥ 1) = 1 − (1 − h₁)(1 − h₂). Per draft (probability q(x₁)q(x₂)):
  //   a a (4/9): w = (1/2, 1/4), h = (0, 1/4) → E[τ | x] = 1/4 + 1/4 = 1/2    (sd: 1/2 + 1/4 = 3/4)
  //   a b (2/9): w = (1/2, 1),   h = (0, 1)   → 1 + 1 = 2                    (sd: 1/2 + 1/2 = 1)
  //   b a (2/9): w = (1, 1/2),   h = (1, 1/2) → 1 + 1/2 = 3/2                (sd: 1 + 1/2 = 3/2)
  //   b b (1/9): w = (1, 1),     h = (1, 1)   → 2                            (sd: 2)
  // E[τ] = (4·1/2 + 2·2 + 2·3/2 + 1·2)/9 = 11/9 (sd: (4·3/4 + 2·1 + 2·3/2 + 2)/9 = 10/9). Note the
  // draft "a a": given that draft, block verification keeps fewer tokens than sd (1/2 < 3/4); it
  // wins in expectation over the drafts, not draft by draft.
  let sdMean = 0, blockMean = 0;
  for (const x1 of [0, 1]) {
    for (const x2 of [0, 1]) {
      const prob = toyQ[x1] * toyQ[x2];
      const r1 = toyP[x1] / toyQ[x1], r2 = toyP[x2] / toyQ[x2];
      sdMean += prob * (Math.min(1, r1) + Math.min(1, r1) * Math.min(1, r2));
      const w1 = Math.min(1, r1), w2 = Math.min(1, w1 * r2);
      const z = Math.max(0, w1 * toyP[0] - toyQ[0]) + Math.max(0, w1 * toyP[1] - toyQ[1]);
      const h1 = z / (z + 1 - w1), h2 = w2;
      blockMean += prob * (1 - (1 - h1) * (1 - h2) + h2);
    }
  }
  assert.ok(Math.abs(sdMean - 10 / 9) < 1e-12, `sd: ${sdMean}`);
  assert.ok(Math.abs(blockMean - 11 / 9) < 1e-12, `block: ${blockMean}`);
  // The shipped weights give the same per-draft expectations as the table above.
  const table: [number[], number, number][] = [[[0, 0], 1 / 2, 3 / 4], [[0, 1], 2, 1], [[1, 0], 1.5, 1.5], [
    [1, 1],
    2,
    2,
  ]];
  for (const [draft, block, tokenLevel] of table) {
    const b = constantBlock(toyP, toyQ, draft);
    assert.ok(Math.abs(blockMoments(b).mean - block) < 1e-12, `block on ${draft}`);
    assert.ok(Math.abs(sdMoments(b).mean - tokenLevel) < 1e-12, `sd on ${draft}`);
  }
});

Deno.test("the paper's toy by simulation: blockVerifier and sd.verifyBlock accept 11/9 and 10/9 tokens per block", () => {
  // H0: the verifier follows its rule, so the mean accepted length over N independent blocks has
  // expectation μ and variance σ²/N. Exact distributions of τ (from the table in the test above):
  // block P(τ = 0, 1, 2) = (3/9, 1/9, 5/9) → σ² = 21/9 − (11/9)² = 68/81;
  // sd P(τ = 0, 1, 2) = (1/3, 2/9, 4/9) → σ² = 2 − (10/9)² = 62/81.
  const N = 200_000;
  const proposals = (seed: number) => {
    const rng = new Random(seed);
    return Array.from(
      { length: N },
      () => constantBlock(toyP, toyQ, [draw(toyQ, rng.next()), draw(toyQ, rng.next())]),
    );
  };
  const blocks = proposals(11); // the same proposals for both verifiers (paired)
  for (
    const [verifier, mu, variance, seed] of [
      [blockVerifier, 11 / 9, 68 / 81, 12],
      [sd, 10 / 9, 62 / 81, 13],
    ] as const
  ) {
    const { mean } = meanAccepted(verifier, blocks, seed);
    const bound = 5 * Math.sqrt(variance / N);
    console.log(
      `  ${verifier.name}: mean ${mean.toFixed(5)}, expected ${mu.toFixed(5)} ± ${bound.toFixed(5)}`,
    );
    assert.ok(Math.abs(mean - mu) <= bound, `${verifier.name}: mean ${mean}, expected ${mu} ± ${bound}`);
  }
});

Deno.test("paired on the same proposals: block verification's expected accepted length is at least sd's on every random tree, L = 1..5", () => {
  // For each random row tree (context-dependent p and q, V = 2..4, 20 % of tokens masked in each
  // row) and L, the expectation over every draft the tree's q can produce (exact enumeration, both
  // verifiers on the same drafts and target rows). Block verification ≥ sd is Sun et al.'s theorem;
  // with L = 1 both are speculative sampling, so they are equal.
  let cases = 0, worst = Infinity, gainSum = 0, draftsWorse = 0;
  for (let seed = 0; seed < 24; seed++) {
    const vocab = 2 + (seed % 3);
    const tree = new RowTree(vocab, 500 + seed, { scale: seed % 2 ? 1 : 2 });
    for (let L = 1; L <= 5; L++) {
      let blockMean = 0, sdMean = 0;
      for (const { drafts, probability } of allDrafts(tree, 1, L)) {
        const b = treeBlock(tree, drafts);
        const bm = blockMoments(b).mean, sm = sdMoments(b).mean;
        blockMean += probability * bm;
        sdMean += probability * sm;
        if (bm < sm - 1e-12) draftsWorse++;
      }
      cases++;
      worst = Math.min(worst, blockMean - sdMean);
      if (sdMean > 0) gainSum += blockMean / sdMean - 1;
      assert.ok(blockMean >= sdMean - 1e-12, `seed ${seed} L=${L}: block ${blockMean} < sd ${sdMean}`);
      if (L === 1) {
        assert.ok(Math.abs(blockMean - sdMean) < 1e-12, `L = 1 must be sd: ${blockMean} vs ${sdMean}`);
      }
    }
  }
  console.log(
    `  ${cases} trees×L: min E[block] − E[sd] = ${worst.toExponential(2)}, mean gain ${
      (100 * gainSum / cases).toFixed(2)
    } %; drafts where block's conditional expectation is below sd's: ${draftsWorse}`,
  );
  assert.ok(draftsWorse > 0, "some single drafts favour sd (the gain is in expectation only)");
});

Deno.test("the closed form from h is what blockVerifier.verifyBlock does: means over 40,000 blocks on fixed drafts", () => {
  // H0: on a fixed draft, the accepted length τ of blockVerifier has P(τ ≥ i) = 1 − Π_{j≥i}(1 − h_j);
  // the mean over M runs (fresh uniforms) lies within 5σ/√M of E[τ | draft] (σ from the same law).
  const M = 40_000;
  for (let seed = 0; seed < 6; seed++) {
    const tree = new RowTree(3 + (seed % 2), 700 + seed);
    const L = 3 + (seed % 3);
    const drafts = drawDrafts(tree, 1, L, new Random(800 + seed));
    const b = treeBlock(tree, drafts);
    const { mean: mu, square } = blockMoments(b);
    const sigma = Math.sqrt(Math.max(0, square - mu * mu));
    const { mean } = meanAccepted(blockVerifier, Array.from({ length: M }, () => b), 900 + seed);
    const bound = 5 * sigma / Math.sqrt(M) + 1e-12;
    assert.ok(
      Math.abs(mean - mu) <= bound,
      `seed ${seed} L=${L} draft ${drafts}: ${mean} vs ${mu} ± ${bound}`,
    );
  }
});

Deno.test("edge cases: p = q keeps every draft token", () => {
  const random = new Random(21);
  for (let L = 1; L <= 5; L++) {
    const tree = new RowTree(4, 40 + L, { same: true });
    for (let i = 0; i < 200; i++) {
      const drafts = drawDrafts(tree, 1, L, random);
      const { proposal, scores } = treeBlock(tree, drafts);
      const result = blockVerifier.verifyBlock(kernel, proposal, scores, random);
      assert.equal(result.accepted, L);
      assert.deepEqual(result.tokens.slice(0, L), drafts[0]);
      assert.equal(result.reached, L);
      assert.equal(result.row, 0);
    }
  }
});

Deno.test("edge cases: disjoint supports accept nothing and draw the recovered token from p", () => {
  // p on {0, 1}, q on {2, 3}: every w is 0 after the first token, so τ = 0 and the draw is from
  // max(0, p − q) = p. H0: the token is distributed as p (G-test, α = 1e-4).
  const p = Float64Array.of(0.3, 0.7, 0, 0), q = Float64Array.of(0, 0, 0.6, 0.4);
  const random = new Random(31);
  const counts = new Float64Array(4);
  const N = 20_000;
  for (let i = 0; i < N; i++) {
    const draft = [draw(q, random.next()), draw(q, random.next()), draw(q, random.next())];
    const { proposal, scores } = constantBlock(p, q, draft);
    const result = blockVerifier.verifyBlock(kernel, proposal, scores, random);
    assert.equal(result.accepted, 0);
    assert.equal(result.reached, 1);
    counts[result.tokens[0]]++;
  }
  const { pValue } = gTest(counts, p);
  assert.ok(pValue >= 1e-4, `p = ${pValue}`);
});

Deno.test("edge cases: L = 0 is a plain draw from p", () => {
  const p = Float64Array.of(0.1, 0.2, 0.3, 0.4), q = Float64Array.of(0.25, 0.25, 0.25, 0.25);
  const random = new Random(41);
  const counts = new Float64Array(4);
  const N = 20_000;
  for (let i = 0; i < N; i++) {
    const { proposal, scores } = constantBlock(p, q, []);
    const result = blockVerifier.verifyBlock(kernel, proposal, scores, random);
    assert.deepEqual([result.accepted, result.reached, result.row, result.tokens.length], [0, 0, 0, 1]);
    counts[result.tokens[0]]++;
  }
  const { pValue } = gTest(counts, p);
  assert.ok(pValue >= 1e-4, `p = ${pValue}`);
});

Deno.test("edge cases: block verification takes exactly one draft", () => {
  const q = Float64Array.of(0.5, 0.5);
  const two = {
    k: 2,
    draftLength: 1,
    tokens: [Int32Array.of(0), Int32Array.of(1)],
    probs: [[q], [q]],
  };
  assert.throws(
    () => blockVerifier.verifyBlock(kernel, two, { probs: () => q }, new Random(1)),
    { name: "RangeError", message: /exactly 1 draft per block, got 2/ },
  );
  const none = { k: 0, draftLength: 1, tokens: [], probs: [] };
  assert.throws(() => blockVerifier.verifyBlock(kernel, none, { probs: () => q }, new Random(1)), RangeError);
  assert.equal(blockVerifier.maxCandidates, 1);
});
