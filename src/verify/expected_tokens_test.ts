// Each verifier's closed-form `expectedTokens` against the mean of its own `verifyBlock` over fresh
// uniforms, for every verifier of the registry that states one (so a new verifier with a closed form
// is tested without touching this file).
//
// Null hypothesis per case: E[tokens | block] = expectedTokens(block). The mean of N = 3,000
// decisions has standard error s/√N; with the cases below (≤ 4 verifiers × 12 blocks) a two-sided
// z-test at |z| > 4.5 has a family-wise false-alarm rate below 48 × 6.8e-6 ≈ 3.3e-4. Seeds fixed.
// Power: the same test must reject deliberately wrong closed forms (sd's formula for block
// verification, K-SEQ's with ρ* = 1, each off by what their rule changes) on some case.
import assert from "node:assert/strict";
import { referenceKernel } from "../kernel/reference.ts";
import { Random } from "../random.ts";
import { verifiers } from "./mod.ts";
import { blockVerifier } from "./block.ts";
import { kseq, kseqExpectedTokens } from "./kseq.ts";
import { sdExpectedTokens } from "./sd.ts";
import { drawDrafts, RowTree, treeBlock } from "./_testing.ts";
import type { Kernel } from "../kernel/types.ts";
import type { BlockProposal, BlockScores, Verifier } from "./types.ts";

const N = 3000;
const Z = 4.5;
const kernel = referenceKernel;

/** The blocks of the test: small vocabularies, k up to 3 (1 for single-draft verifiers), L 1..3. */
function cases(verifier: Verifier): { proposal: BlockProposal; scores: BlockScores; label: string }[] {
  const out = [];
  let seed = 100;
  for (const vocab of [3, 5]) {
    for (const L of [1, 2, 3]) {
      for (const k of [1, 3]) {
        const kk = Math.min(k, verifier.maxCandidates);
        const tree = new RowTree(vocab, seed++, { mask: 0.15, scale: 1.2 });
        const drafts = drawDrafts(tree, kk, L, new Random(seed++));
        out.push({
          ...treeBlock(tree, drafts),
          label: `V=${vocab} L=${L} k=${kk} drafts=${JSON.stringify(drafts)}`,
        });
      }
    }
  }
  return out;
}

/** z of the Monte Carlo mean of `verifier`'s tokens per block against `expected`. */
function zScore(
  verifier: Verifier,
  expected: (kernel: Kernel, proposal: BlockProposal, scores: BlockScores) => number,
  proposal: BlockProposal,
  scores: BlockScores,
  seed: number,
): number {
  const random = new Random(seed);
  let sum = 0, sq = 0;
  for (let i = 0; i < N; i++) {
    const n = verifier.verifyBlock(kernel, proposal, scores, random).tokens.length;
    sum += n;
    sq += n * n;
  }
  const mean = sum / N, variance = Math.max(sq / N - mean * mean, 1e-12);
  return (mean - expected(kernel, proposal, scores)) / Math.sqrt(variance / N);
}

Deno.test("every verifier's expectedTokens equals the mean of its own decisions (z-test over fixed blocks)", () => {
  const withClosedForm = Object.values(verifiers).filter((v: Verifier) => v.expectedTokens !== undefined);
  assert.deepEqual(withClosedForm.map((v) => v.name).sort(), ["block", "kseq", "kseq-block", "sd"]);
  for (const verifier of withClosedForm) {
    for (const [i, c] of cases(verifier).entries()) {
      const z = zScore(verifier, verifier.expectedTokens!, c.proposal, c.scores, 7 + i);
      assert.ok(Math.abs(z) < Z, `${verifier.name} ${c.label}: z = ${z.toFixed(2)}`);
    }
  }
});

Deno.test("power: the test rejects sd's closed form for block verification and K-SEQ's with ρ* = 1", () => {
  const maxZ = (verifier: Verifier, wrong: Parameters<typeof zScore>[1]) =>
    Math.max(
      ...cases(verifier).map((c, i) => Math.abs(zScore(verifier, wrong, c.proposal, c.scores, 7 + i))),
    );
  assert.ok(
    maxZ(blockVerifier, sdExpectedTokens) > Z,
    "block verification keeps more than sd's formula says",
  );
  const rhoOne: Kernel = { ...kernel, solveRho: (p, q, k) => ({ ...kernel.solveRho(p, q, k), rho: 1 }) };
  assert.ok(
    maxZ(kseq, (_k, proposal, scores) => kseqExpectedTokens(rhoOne, proposal, scores)) > Z,
    "K-SEQ with ρ* = 1 is not K-SEQ",
  );
});
