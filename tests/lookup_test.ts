/**
 * Sequence-level exactness of prompt lookup drafting (`LookupProposer`, src/decode/lookup.ts) on
 * toy Markov chains, with speculative sampling (`sd`) and block verification (`block`).
 *
 * Null hypothesis H0 (per configuration): the 4-token continuations the block decoder produces with
 * the lookup proposer are i.i.d. draws from the warped target chain, P(x1..x4 | prompt) =
 * Π p_warp(x_i | context) (warp: temperature, top-k), computed here from the target table with a
 * plain softmax (independent of the code under test). The prompts repeat n-grams, so the lookup
 * drafts most blocks (with one-hot q), in contexts that change with every sampled token; on the
 * order-1 chain it sometimes finds nothing (a target-only step). Each configuration runs N = 30,000
 * generations with maxNewTokens = 4 from a fixed prompt and compares the counts over all V^4
 * sequences with those probabilities by a G-test (`gTest` in _stats.ts: cells with expected count
 * < 5 pooled; any impossible sequence gives p = 0).
 *
 * Threshold: family-wise α = 1e-3, Bonferroni over the exactness configurations of this file
 * (CONFIGS.length = 6: sd and block on an order-1 V = 4 and an order-2 V = 3 chain, plain, at
 * T = 0.7 and with top-k 2; n-grams 1..3 or the default 2..3), so a configuration fails when
 * p < 1e-3 / 6 ≈ 1.67e-4.
 *
 * Power check: the same test, same N and threshold, must reject three deliberately wrong variants:
 * - `acceptAll`: a verifier that keeps every lookup token (then a bonus token from p), i.e. treats
 *   the copied text as if the target had written it;
 * - `residualFromP`: speculative sampling that, after a rejection, draws the recovered token from p
 *   instead of the residual norm(max(p − q, 0)) (p without the rejected token, for one-hot q): a
 *   subtle slip that puts too much mass on the drafted token and never an impossible one;
 * - `uniformQ`: a lookup proposer that proposes the same tokens but reports q as uniform instead of
 *   one-hot, verified by the real `sd` (a wrong q makes a correct verifier inexact).
 *
 * Each configuration also checks that the lookup proposed in most blocks, and that both accepted and
 * rejected draft tokens occurred, so that the test exercises what it claims to. Seeds are fixed, so
 * the file is deterministic.
 */

import assert from "node:assert/strict";
import { gTest } from "./_stats.ts";
import { sequenceProbabilities } from "./_chain_oracle.ts";
import { referenceKernel } from "../src/kernel/reference.ts";
import type { Kernel, WarpOptions } from "../src/kernel/types.ts";
import { Random } from "../src/random.ts";
import { getVerifier } from "../src/verify/mod.ts";
import type { BlockProposal, BlockResult, BlockScores, Verifier } from "../src/verify/types.ts";
import { BlockDecoder } from "../src/decode/decoder.ts";
import { LookupProposer } from "../src/decode/lookup.ts";
import { MarkovModel, randomMarkovTable } from "../src/decode/markov.ts";
import type { DraftProposal, ProposalRequest, Proposer } from "../src/decode/proposer.ts";

/** Generations per configuration. */
const N = 30_000;
/** Tokens generated per sequence. */
const LENGTH = 4;
/** Family-wise significance level. */
const FAMILY_ALPHA = 1e-3;

/** A target chain and a prompt that repeats n-grams. */
interface Chain {
  name: string;
  order: 1 | 2;
  vocab: number;
  table: Float32Array;
  prompt: number[];
}

/**
 * Order 1, V = 4, some -Infinity transitions (the lookup then proposes tokens p gives 0); token 3 is
 * not in the prompt, so after a sampled 3 the lookup finds nothing and the block is target-only.
 */
function chainOrder1(): Chain {
  const vocab = 4;
  const table = randomMarkovTable(vocab, 1, 41, { scale: 1.5, maskProbability: 0.2 });
  return { name: "order-1 V=4", order: 1, vocab, table, prompt: [0, 1, 2, 0, 1, 1, 2, 0] };
}

/** Order 2, V = 3, masks; the prompt holds all 9 bigrams (a de Bruijn sequence), masked ones too. */
function chainOrder2(): Chain {
  const vocab = 3;
  const table = randomMarkovTable(vocab, 2, 43, { scale: 1.5, maskProbability: 0.2 });
  return { name: "order-2 V=3", order: 2, vocab, table, prompt: [0, 0, 1, 0, 2, 1, 1, 2, 2, 0] };
}

/** A verifier that keeps every draft token, then draws a bonus token from p: wrong on purpose. */
const acceptAll: Verifier = Object.freeze({
  name: "acceptAll",
  draftSampling: "iid",
  maxCandidates: 1,
  verifyBlock(kernel: Kernel, proposal: BlockProposal, scores: BlockScores, random: Random): BlockResult {
    const L = proposal.draftLength;
    const tokens = Array.from(proposal.tokens[0]);
    tokens.push(kernel.sample(scores.probs(0, L), [random.next()])[0]);
    return { tokens, accepted: L, reached: L, row: 0 };
  },
});

/**
 * Speculative sampling that, on a rejection, draws from p itself instead of norm(max(p − q, 0)) (with
 * q one-hot: p without the rejected token): wrong on purpose, the drafted token comes out too often.
 */
const residualFromP: Verifier = Object.freeze({
  name: "residualFromP",
  draftSampling: "iid",
  maxCandidates: 1,
  verifyBlock(kernel: Kernel, proposal: BlockProposal, scores: BlockScores, random: Random): BlockResult {
    const L = proposal.draftLength;
    const draft = proposal.tokens[0], q = proposal.probs[0];
    const tokens: number[] = [];
    for (let t = 0; t < L; t++) {
      const p = scores.probs(0, t), x = draft[t];
      const u = random.next(), v = random.next();
      if (u * q[t][x] < p[x]) {
        tokens.push(x);
        continue;
      }
      tokens.push(kernel.sample(p, [v])[0]);
      return { tokens, accepted: t, reached: t + 1, row: 0 };
    }
    tokens.push(kernel.sample(scores.probs(0, L), [random.next()])[0]);
    return { tokens, accepted: L, reached: L, row: 0 };
  },
});

/** The lookup proposer's tokens with q reported as uniform instead of one-hot: wrong on purpose. */
class UniformQLookup implements Proposer {
  readonly name = "uniformQ";
  readonly #inner: LookupProposer;
  readonly #uniform: Float64Array;
  constructor(vocabSize: number, minNgram: number) {
    this.#inner = new LookupProposer({ vocabSize, minNgram });
    this.#uniform = new Float64Array(vocabSize).fill(1 / vocabSize);
  }
  get vocabSize(): number {
    return this.#inner.vocabSize;
  }
  reset(): void {
    this.#inner.reset();
  }
  room(known: number): number {
    return this.#inner.room(known);
  }
  async propose(
    pending: ArrayLike<number>,
    request: ProposalRequest,
    random: Random,
  ): Promise<DraftProposal> {
    const p = await this.#inner.propose(pending, request, random);
    return { ...p, probs: [p.probs[0].map(() => this.#uniform)] };
  }
  rollback(row: number, accepted: number): number[] {
    return this.#inner.rollback(row, accepted);
  }
}

/** One configuration. */
interface Config {
  label: string;
  chain: Chain;
  verifier: Verifier;
  draftLength: number;
  warp: WarpOptions;
  seed: number;
  /** The lookup's shortest n-gram (maxNgram is the default, 3). */
  minNgram: 1 | 2;
  proposer?: (vocab: number, minNgram: number) => Proposer;
}

interface Outcome {
  pValue: number;
  impossible: number;
  statistic: number;
  df: number;
  draftedShare: number;
  accepted: number;
  rejected: number;
  blockEfficiency: number;
}

/** Runs N generations; the G-test p-value against the warped target chain, and coverage counts. */
async function run(c: Config): Promise<Outcome> {
  const { chain } = c;
  const target = new MarkovModel({ table: chain.table, vocabSize: chain.vocab, order: chain.order });
  const proposer = c.proposer?.(chain.vocab, c.minNgram) ??
    new LookupProposer({ vocabSize: chain.vocab, minNgram: c.minNgram });
  const decoder = new BlockDecoder({
    target,
    proposer,
    kernel: referenceKernel,
    verifier: c.verifier,
    draftLength: c.draftLength,
    warp: c.warp,
  });
  const random = new Random(c.seed);
  const vocab = chain.vocab;
  const counts = new Float64Array(vocab ** LENGTH);
  let blocks = 0, drafted = 0, accepted = 0, reached = 0;
  for (let i = 0; i < N; i++) {
    const { tokens, stats } = await decoder.generate(chain.prompt, { maxNewTokens: LENGTH, random });
    assert.equal(tokens.length, LENGTH);
    let s = 0;
    for (const x of tokens) s = s * vocab + x;
    counts[s]++;
    blocks += stats.blocks;
    for (const p of stats.plans) if (p.draftLength > 0) drafted += p.blocks;
    accepted += stats.acceptedPerDepth.reduce((a, b) => a + b, 0);
    reached += stats.reachedPerDepth.reduce((a, b) => a + b, 0);
  }
  const fit = gTest(counts, sequenceProbabilities(chain, c.warp, LENGTH));
  return {
    pValue: fit.pValue,
    impossible: fit.impossible,
    statistic: fit.statistic,
    df: fit.df,
    draftedShare: drafted / blocks,
    accepted,
    rejected: reached - accepted,
    blockEfficiency: (N * LENGTH) / blocks,
  };
}

const sd = getVerifier("sd");
const block = getVerifier("block");
const CONFIGS: Config[] = [
  { label: "sd L=3", chain: chainOrder1(), verifier: sd, draftLength: 3, warp: {}, seed: 1201, minNgram: 1 },
  {
    label: "block L=3",
    chain: chainOrder1(),
    verifier: block,
    draftLength: 3,
    warp: {},
    seed: 1202,
    minNgram: 1,
  },
  {
    label: "sd L=4 T=0.7",
    chain: chainOrder2(),
    verifier: sd,
    draftLength: 4,
    warp: { temperature: 0.7 },
    seed: 1203,
    minNgram: 2,
  },
  {
    label: "block L=4",
    chain: chainOrder2(),
    verifier: block,
    draftLength: 4,
    warp: {},
    seed: 1204,
    minNgram: 2,
  },
  // Top-2: p gives 0 to many copied tokens (a certain rejection; block's weight w drops to 0).
  {
    label: "block L=3 top-k 2",
    chain: chainOrder1(),
    verifier: block,
    draftLength: 3,
    warp: { topK: 2 },
    seed: 1205,
    minNgram: 2,
  },
  {
    label: "sd L=4 top-k 2",
    chain: chainOrder2(),
    verifier: sd,
    draftLength: 4,
    warp: { topK: 2 },
    seed: 1206,
    minNgram: 1,
  },
];
/** 1e-3 / 6 ≈ 1.67e-4. */
const THRESHOLD = FAMILY_ALPHA / CONFIGS.length;

function report(o: Outcome): string {
  const fit = `p = ${o.pValue.toExponential(3)} (G = ${o.statistic.toFixed(2)}, df = ${o.df}`;
  const limits = `impossible ${o.impossible}, N = ${N}, threshold ${THRESHOLD.toExponential(2)})`;
  const drafted = `blocks with a draft ${(100 * o.draftedShare).toFixed(1)}%`;
  const depths = `draft tokens accepted ${o.accepted}, rejected ${o.rejected}`;
  return `  ${fit}, ${limits}; ${drafted}, ${depths}, block efficiency ${o.blockEfficiency.toFixed(3)}`;
}

for (const c of CONFIGS) {
  Deno.test(`lookup (n ${c.minNgram}..3) + ${c.label} on ${c.chain.name} samples length-4 sequences from the target chain`, async () => {
    const outcome = await run(c);
    console.log(report(outcome));
    assert.ok(outcome.draftedShare > 0.5, "the lookup drafted in most blocks");
    if (c.chain.name === "order-1 V=4") assert.ok(outcome.draftedShare < 1, "some blocks were target-only");
    assert.ok(outcome.accepted > N / 10 && outcome.rejected > N / 10, "both outcomes occurred often");
    assert.ok(outcome.pValue >= THRESHOLD, `p = ${outcome.pValue} < threshold ${THRESHOLD}`);
  });
}

const WRONG: Config[] = [
  {
    label: "acceptAll L=3",
    chain: chainOrder1(),
    verifier: acceptAll,
    draftLength: 3,
    warp: {},
    seed: 1301,
    minNgram: 1,
  },
  {
    label: "residualFromP L=3",
    chain: chainOrder1(),
    verifier: residualFromP,
    draftLength: 3,
    warp: {},
    seed: 1303,
    minNgram: 1,
  },
  {
    label: "sd L=3 with q reported uniform (uniformQ)",
    chain: chainOrder1(),
    verifier: sd,
    draftLength: 3,
    warp: {},
    seed: 1302,
    minNgram: 1,
    proposer: (vocab, minNgram) => new UniformQLookup(vocab, minNgram),
  },
];
for (const c of WRONG) {
  Deno.test(`power check: lookup (n ${c.minNgram}..3) + ${c.label} on ${c.chain.name} is rejected at the same N and threshold`, async () => {
    const outcome = await run(c);
    console.log(report(outcome));
    assert.ok(
      outcome.pValue < THRESHOLD,
      `p = ${outcome.pValue} >= threshold ${THRESHOLD}: the test cannot see this error`,
    );
  });
}
