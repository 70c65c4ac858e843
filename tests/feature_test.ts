/**
 * Sequence-level exactness of feature drafting (a proposer that reads the target's features,
 * EAGLE-style: `Proposer.needsTargetFeatures`) on toy Markov chains.
 *
 * Setup: the target is a `MarkovModel` with `features: true` (position j's feature is
 * `[j, x_j, h_j]`, h a hash of the whole context); the proposer is `ToyFeatureProposer`
 * (src/decode/_testing.ts), an order-1 Markov draft whose logits get a feature-dependent term, so
 * q changes with the features the decoder passes. The decoder runs the prompt through the target
 * first (one autoregressive step), then blocks with the features of the kept positions.
 *
 * Null hypothesis H0 (per configuration): the 3-token continuations are i.i.d. draws from the
 * warped target chain, P(x1 x2 x3 | prompt) = Π p_warp(x_i | context), computed from the target
 * table with a plain softmax (tests/_chain_oracle.ts, independent of the code under test). Each
 * configuration runs N = 30,000 generations with maxNewTokens = 3 (the prefill step and at least
 * one block: a 3-token continuation crosses the prefill/block boundary and, with L = 2, blocks)
 * and compares the counts over all V^3 sequences by a G-test (`gTest`, tests/_stats.ts: cells with
 * expected count < 5 pooled; an impossible sequence gives p = 0).
 *
 * Threshold: family-wise α = 1e-3, Bonferroni over the exactness configurations of this file
 * (CONFIGS.length = 8), so a configuration fails when p < 1e-3 / 8 = 1.25e-4. One configuration
 * feeds the features misaligned by one position (the proposer reads the feature of the position
 * before the one the contract names): a worse draft, but q is still the q the tokens were drawn
 * from, so it must stay exact.
 *
 * Power check: the same test, same N and threshold, must reject a proposer that samples from its
 * feature-dependent q but reports q without the feature term (`wrongQ`), verified by the real
 * verifiers, k = 1 (sd) and k = 3 (kseq).
 *
 * Seeds are fixed, so the file is deterministic.
 */

import assert from "node:assert/strict";
import { gTest } from "./_stats.ts";
import { sequenceProbabilities } from "./_chain_oracle.ts";
import { referenceKernel } from "../src/kernel/reference.ts";
import type { WarpOptions } from "../src/kernel/types.ts";
import { Random } from "../src/random.ts";
import { BlockDecoder } from "../src/decode/decoder.ts";
import { MarkovModel, randomMarkovTable } from "../src/decode/markov.ts";
import { ToyFeatureProposer } from "../src/decode/_testing.ts";

const N = 30_000;
const LENGTH = 3;
const FAMILY_ALPHA = 1e-3;

interface Chain {
  name: string;
  order: 1 | 2;
  vocab: number;
  target: Float32Array;
  draft: Float32Array;
  prompt: number[];
}

function chainOrder1(): Chain {
  const vocab = 4;
  return {
    name: "order-1 V=4",
    order: 1,
    vocab,
    target: randomMarkovTable(vocab, 1, 61, { scale: 1.5, maskProbability: 0.2 }),
    draft: randomMarkovTable(vocab, 1, 62, { scale: 1.5, maskProbability: 0.2 }),
    prompt: [0, 2],
  };
}

function chainOrder2(): Chain {
  const vocab = 3;
  return {
    name: "order-2 V=3",
    order: 2,
    vocab,
    target: randomMarkovTable(vocab, 2, 63, { scale: 1.5, maskProbability: 0.2 }),
    draft: randomMarkovTable(vocab, 1, 64, { scale: 1.5, maskProbability: 0.2 }),
    prompt: [2, 1],
  };
}

interface Config {
  chain: Chain;
  verifier: string;
  k: number;
  draftLength: number;
  rows?: boolean;
  warp?: WarpOptions;
  misaligned?: boolean;
  wrongQ?: boolean;
  seed: number;
}

function label(c: Config): string {
  return `${c.verifier} k=${c.k} L=${c.draftLength}${c.rows ? " (rows)" : ""}${
    c.warp ? ` warp=${JSON.stringify(c.warp)}` : ""
  }${c.misaligned ? " features misaligned by one" : ""}${c.wrongQ ? " wrongQ" : ""} on ${c.chain.name}`;
}

async function pValue(
  c: Config,
): Promise<{ pValue: number; statistic: number; df: number; rejected: number }> {
  const { chain } = c;
  const warp = c.warp ?? {};
  const target = new MarkovModel({
    table: chain.target,
    vocabSize: chain.vocab,
    order: chain.order,
    features: true,
    tree: !c.rows,
  });
  const proposer = new ToyFeatureProposer({
    table: chain.draft,
    vocabSize: chain.vocab,
    kernel: referenceKernel,
    warp,
    misaligned: c.misaligned,
    wrongQ: c.wrongQ,
  });
  const decoder = new BlockDecoder({
    target,
    proposer,
    kernel: referenceKernel,
    verifier: c.verifier,
    k: c.k,
    draftLength: c.draftLength,
    warp,
  });
  const random = new Random(c.seed);
  const counts = new Float64Array(chain.vocab ** LENGTH);
  let rejected = 0;
  for (let i = 0; i < N; i++) {
    const { tokens, stats } = await decoder.generate(chain.prompt, { maxNewTokens: LENGTH, random });
    assert.equal(tokens.length, LENGTH);
    counts[(tokens[0] * chain.vocab + tokens[1]) * chain.vocab + tokens[2]]++;
    rejected += (stats.reachedPerDepth[0] ?? 0) - (stats.acceptedPerDepth[0] ?? 0);
  }
  return {
    ...gTest(counts, sequenceProbabilities({ ...chain, table: chain.target }, warp, LENGTH)),
    rejected,
  };
}

const CONFIGS: Config[] = [];
let seed = 7000;
for (const chain of [chainOrder1(), chainOrder2()]) {
  CONFIGS.push({ chain, verifier: "sd", k: 1, draftLength: 2, seed: seed++ });
  CONFIGS.push({ chain, verifier: "kseq", k: 3, draftLength: 2, seed: seed++ });
  CONFIGS.push({ chain, verifier: "specinfer-wor", k: 2, draftLength: 2, rows: true, seed: seed++ });
}
CONFIGS.push({
  chain: chainOrder1(),
  verifier: "block",
  k: 1,
  draftLength: 2,
  warp: { temperature: 0.7 },
  seed: seed++,
});
CONFIGS.push({
  chain: chainOrder2(),
  verifier: "kseq",
  k: 2,
  draftLength: 2,
  misaligned: true,
  seed: seed++,
});
const THRESHOLD = FAMILY_ALPHA / CONFIGS.length;

for (const c of CONFIGS) {
  Deno.test(`feature drafting: ${label(c)} samples length-3 sequences from the target chain`, async () => {
    const r = await pValue(c);
    console.log(
      `  p = ${r.pValue.toExponential(3)} (G = ${r.statistic.toFixed(2)}, df = ${r.df}, N = ${N}, threshold ${
        THRESHOLD.toExponential(2)
      }; depth-0 rejections ${r.rejected})`,
    );
    assert.ok(r.rejected > N / 20, "the draft differs from the target: rejections must occur");
    assert.ok(r.pValue >= THRESHOLD, `p = ${r.pValue} < threshold ${THRESHOLD}`);
  });
}

for (
  const c of [
    { chain: chainOrder1(), verifier: "sd", k: 1, draftLength: 2, wrongQ: true, seed: 9100 },
    { chain: chainOrder2(), verifier: "kseq", k: 3, draftLength: 2, wrongQ: true, seed: 9101 },
  ] satisfies Config[]
) {
  Deno.test(`power check: feature drafting ${label(c)} (reports a q it did not sample from) is rejected at the same N and threshold`, async () => {
    const r = await pValue(c);
    console.log(`  p = ${r.pValue.toExponential(3)} (G = ${r.statistic.toFixed(2)}, df = ${r.df}, N = ${N})`);
    assert.ok(
      r.pValue < THRESHOLD,
      `p = ${r.pValue} >= threshold ${THRESHOLD}: the test cannot see this error`,
    );
  });
}
