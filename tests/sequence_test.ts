/**
 * Sequence-level exactness of every decoding method on toy Markov chains.
 *
 * Null hypothesis H0 (per configuration): the 3-token continuations produced by the decoder are
 * i.i.d. draws from the warped target chain, i.e. P(x1 x2 x3 | prompt) = Π p_warp(x_i | context),
 * computed here from the target table with a plain softmax (independent of the code under test).
 * Each configuration runs N generations with maxNewTokens = 3 from a fixed prompt and compares the
 * counts over all V^3 sequences with those probabilities by a G-test (cells with expected count < 5
 * pooled; any impossible sequence gives p = 0).
 *
 * Threshold: family-wise α = 1e-3, Bonferroni over the exactness configurations in this file
 * (CONFIGS.length: 30 with the reference kernel, 41 when the WASM kernel is present), so a
 * configuration fails when p < 1e-3 / CONFIGS.length (≈ 3.3e-5 for 30, 2.4e-5 for 41). `auto` runs
 * with a fixed synthetic cost model and must switch between at least 3 plans over its N runs.
 *
 * Power check: the same test, same N, on seven deliberately wrong verifiers — K-SEQ with ρ fixed to 1
 * and K-SEQ with the k = 1 residual for every k (both k = 4), block verification with the plain
 * residual max(p − q, 0) in place of max(w_τ·p − q, 0), and block verification stopping τ at the
 * first failed test (both L = 3), and a chooser that peeks at the current block (sd, switched to
 * autoregressive for the block when sd rejects its first token), and two K-SEQ block verifiers (k = 4,
 * L = 3: ρ* of the normalised p reused for the weighted target w·p; children kept independently
 * with 1 − (1 − a)^m) — must give p below that threshold.
 *
 * Seeds are fixed, so the file is deterministic.
 */

import assert from "node:assert/strict";
import { gTest } from "./_stats.ts";
import { sequenceProbabilities } from "./_chain_oracle.ts";
import {
  blockFirstStop,
  blockPlainResidual,
  kseqBlockIndependentChildren,
  kseqBlockUnitRho,
  kseqNaiveResidual,
  kseqRhoOne,
  peekingChooser,
} from "./_wrong_verifiers.ts";
import { AutoPlanner } from "../src/decode/auto.ts";
import { ForwardCost } from "../src/decode/cost.ts";
import { referenceKernel } from "../src/kernel/reference.ts";
import type { Kernel, WarpOptions } from "../src/kernel/types.ts";
import { Random } from "../src/random.ts";
import type { Verifier } from "../src/verify/types.ts";
import { AutoregressiveDecoder } from "../src/decode/autoregressive.ts";
import { BlockDecoder } from "../src/decode/decoder.ts";
import { MarkovModel, nearMarkovTable, randomMarkovTable } from "../src/decode/markov.ts";
import type { DecodeMethod, Decoder } from "../src/decode/types.ts";

/** Generations per configuration. */
const N = 30_000;
/** Tokens generated per sequence. */
const LENGTH = 3;
/** Family-wise significance level. */
const FAMILY_ALPHA = 1e-3;

/** A Markov chain pair: target and draft tables, with some -Infinity (impossible) transitions. */
interface Chain {
  name: string;
  order: 1 | 2;
  vocab: number;
  target: Float32Array;
  draft: Float32Array;
  prompt: number[];
}

/**
 * Order 1, V = 4: the draft is an independent random table, so p and q differ substantially; each
 * has its own -Infinity transitions (the draft proposes tokens the target never emits, and misses
 * tokens the target emits).
 */
function chainOrder1(): Chain {
  const vocab = 4;
  const target = randomMarkovTable(vocab, 1, 11, { scale: 1.5, maskProbability: 0.2 });
  const draft = randomMarkovTable(vocab, 1, 12, { scale: 1.5, maskProbability: 0.2 });
  return { name: "order-1 V=4", order: 1, vocab, target, draft, prompt: [0] };
}

/** Order 2, V = 3: the draft is the target plus heavy noise, with masks of its own. */
function chainOrder2(): Chain {
  const vocab = 3;
  const target = randomMarkovTable(vocab, 2, 27, { scale: 1.5, maskProbability: 0.2 });
  const draft = nearMarkovTable(target, vocab, 28, { noise: 1.5, maskProbability: 0.2, unmask: true });
  return { name: "order-2 V=3", order: 2, vocab, target, draft, prompt: [2, 1] };
}

/** Order 1, V = 5, no masks, for the warp configurations (temperature, top-k). */
function chainOrder1Wide(): Chain {
  const vocab = 5;
  const target = randomMarkovTable(vocab, 1, 31, { scale: 1.2 });
  const draft = randomMarkovTable(vocab, 1, 32, { scale: 1.2 });
  return { name: "order-1 V=5", order: 1, vocab, target, draft, prompt: [2] };
}

/** One exactness (or power) configuration. */
interface Config {
  chain: Chain;
  method: DecodeMethod;
  k: number;
  draftLength: number;
  warp: WarpOptions;
  kernel: Kernel;
  verifier?: Verifier;
  seed: number;
  /** For `auto`: the planner (built once per configuration). */
  planner?: () => AutoPlanner;
  /** Score k drafts as k rows (the target without tree attention); by default one merged tree. */
  rows?: boolean;
}

function label(c: Config): string {
  const warp = Object.keys(c.warp).length ? ` warp=${JSON.stringify(c.warp)}` : "";
  const verifier = c.verifier ? ` verifier=${(c.verifier as { label?: string }).label}` : "";
  const shape = c.method === "autoregressive" ? "" : ` k=${c.k} L=${c.draftLength}${c.rows ? " (rows)" : ""}`;
  return `${c.method}${shape}${verifier}${warp} on ${c.chain.name} (${c.kernel.name} kernel)`;
}

function buildDecoder(c: Config): Decoder {
  const { chain } = c;
  const target = new MarkovModel({
    table: chain.target,
    vocabSize: chain.vocab,
    order: chain.order,
    tree: !c.rows,
  });
  if (c.method === "autoregressive") {
    return new AutoregressiveDecoder({ target, kernel: c.kernel, warp: c.warp });
  }
  const draft = new MarkovModel({ table: chain.draft, vocabSize: chain.vocab, order: chain.order });
  if (c.method === "auto") {
    return new BlockDecoder({ target, draft, kernel: c.kernel, planner: c.planner!(), warp: c.warp });
  }
  return new BlockDecoder({
    target,
    draft,
    kernel: c.kernel,
    verifier: c.verifier ?? c.method,
    k: c.k,
    draftLength: c.draftLength,
    warp: c.warp,
  });
}

/** Runs N generations and returns the G-test p-value against the warped target chain. */
async function exactnessPValue(
  c: Config,
): Promise<{ pValue: number; statistic: number; df: number; plans: Map<string, number> }> {
  const decoder = buildDecoder(c);
  const random = new Random(c.seed);
  const vocab = c.chain.vocab;
  const counts = new Float64Array(vocab ** LENGTH);
  const plans = new Map<string, number>();
  for (let i = 0; i < N; i++) {
    const { tokens, stats } = await decoder.generate(c.chain.prompt, { maxNewTokens: LENGTH, random });
    assert.equal(tokens.length, LENGTH);
    counts[(tokens[0] * vocab + tokens[1]) * vocab + tokens[2]]++;
    for (const p of stats.plans) {
      const key = `${p.method} k=${p.k} L=${p.draftLength}`;
      plans.set(key, (plans.get(key) ?? 0) + p.blocks);
    }
  }
  return {
    ...gTest(counts, sequenceProbabilities({ ...c.chain, table: c.chain.target }, c.warp, LENGTH)),
    plans,
  };
}

/**
 * A fixed synthetic cost model for `auto` (no timings: the run is deterministic): a target forward of
 * r × T costs 1 + 0.06·(T − 1) + 0.12·(r − 1), a draft forward 0.03, so on these chains autoregressive,
 * block verification and K-SEQ at several L are all close and the planner switches between them.
 */
function syntheticAuto(): AutoPlanner {
  const rows = [1, 1, 1, 2, 2, 4, 4], tokens = [1, 2, 7, 1, 7, 1, 7];
  const target = new ForwardCost({
    rows,
    tokens,
    ms: rows.map((r, i) => 1 + 0.06 * (tokens[i] - 1) + 0.12 * (r - 1)),
  });
  const draft = new ForwardCost({ rows: [1], tokens: [1], ms: [0.03] });
  return new AutoPlanner({ cost: { target, draft }, maxDraftLength: 3, maxDrafts: 4, learnCost: false });
}

/**
 * The WASM kernel when `src/kernel/wasm.ts` exists (it is built separately): imported dynamically so
 * this file works before it exists; once it exists, a failure to load it is an error, not a skip.
 */
async function optionalWasmKernel(): Promise<Kernel | undefined> {
  const url = new URL("../src/kernel/wasm.ts", import.meta.url);
  try {
    if (!(await Deno.stat(url)).isFile) return undefined;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  const specifier = url.href; // non-literal: the type checker does not require the file
  const mod = await import(specifier) as {
    loadKernel?: (options?: { fallback?: boolean }) => Promise<Kernel>;
  };
  if (typeof mod.loadKernel !== "function") return undefined;
  const kernel = await mod.loadKernel({ fallback: false });
  return kernel && kernel.name === "wasm" ? kernel : undefined;
}

const methods: { method: DecodeMethod; k: number; draftLength: number }[] = [
  { method: "autoregressive", k: 1, draftLength: 1 },
  { method: "sd", k: 1, draftLength: 1 },
  { method: "sd", k: 1, draftLength: 3 },
  { method: "kseq", k: 2, draftLength: 2 },
  { method: "kseq", k: 4, draftLength: 3 },
  { method: "kseq", k: 3, draftLength: 1 },
  { method: "specinfer", k: 3, draftLength: 2 },
  { method: "specinfer-wor", k: 3, draftLength: 2 },
  { method: "block", k: 1, draftLength: 3 },
  { method: "block", k: 1, draftLength: 2 },
  { method: "kseq-block", k: 2, draftLength: 2 },
  { method: "kseq-block", k: 3, draftLength: 3 },
];

const CONFIGS: Config[] = [];
let seed = 1000;
for (const chain of [chainOrder1(), chainOrder2()]) {
  for (const m of methods) CONFIGS.push({ chain, ...m, warp: {}, kernel: referenceKernel, seed: seed++ });
}
CONFIGS.push({
  chain: chainOrder1Wide(),
  method: "kseq",
  k: 2,
  draftLength: 3,
  warp: { temperature: 0.6 },
  kernel: referenceKernel,
  seed: seed++,
});
CONFIGS.push({
  chain: chainOrder1Wide(),
  method: "kseq",
  k: 3,
  draftLength: 2,
  warp: { topK: 3 },
  kernel: referenceKernel,
  seed: seed++,
});
// The multi-draft methods again with k rows instead of one tree (targets without tree attention).
for (
  const m of [{ method: "kseq" as const, k: 4, draftLength: 3 }, {
    method: "specinfer-wor" as const,
    k: 3,
    draftLength: 2,
  }]
) {
  CONFIGS.push({ chain: chainOrder2(), ...m, warp: {}, kernel: referenceKernel, seed: seed++, rows: true });
}
// auto: method, k and L chosen per block from the past (synthetic costs, acceptance learned online).
for (const chain of [chainOrder1(), chainOrder2()]) {
  CONFIGS.push({
    chain,
    method: "auto",
    k: 4,
    draftLength: 3,
    warp: {},
    kernel: referenceKernel,
    seed: seed++,
    planner: syntheticAuto,
  });
}
// With the WASM kernel, the speculative methods again on the order-2 chain (masks on both sides,
// disjoint supports in some contexts), to keep the file's run time bounded.
const wasm = await optionalWasmKernel();
if (wasm) {
  for (const m of methods.filter((m) => m.method !== "autoregressive")) {
    CONFIGS.push({ chain: chainOrder2(), ...m, warp: {}, kernel: wasm, seed: seed++ });
  }
}
// 30 configurations with the reference kernel alone (threshold 1e-3 / 30 ≈ 3.3e-5), 41 with WASM.
const THRESHOLD = FAMILY_ALPHA / CONFIGS.length;

for (const c of CONFIGS) {
  Deno.test(`${label(c)} samples length-3 sequences from the target chain`, async () => {
    const { pValue, statistic, df, plans } = await exactnessPValue(c);
    console.log(
      `  p = ${pValue.toExponential(3)} (G = ${statistic.toFixed(2)}, df = ${df}, N = ${N}, threshold ${
        THRESHOLD.toExponential(2)
      })`,
    );
    if (c.method === "auto") {
      console.log(`  plans: ${[...plans].map(([k, n]) => `${k}: ${n}`).join(", ")}`);
      assert.ok(
        plans.size >= 3,
        `auto must switch between plans here, it ran ${[...plans.keys()].join("; ")}`,
      );
    }
    assert.ok(pValue >= THRESHOLD, `p = ${pValue} < threshold ${THRESHOLD}`);
  });
}

const wrong: { verifier: Verifier; label: string; k: number; chain: () => Chain }[] = [
  { verifier: kseqRhoOne, label: "kseqRhoOne", k: 4, chain: chainOrder1 },
  { verifier: kseqNaiveResidual, label: "kseqNaiveResidual", k: 4, chain: chainOrder1 },
  { verifier: blockPlainResidual, label: "blockPlainResidual", k: 1, chain: chainOrder2 },
  { verifier: blockFirstStop, label: "blockFirstStop", k: 1, chain: chainOrder1 },
  {
    verifier: peekingChooser,
    label: "peekingChooser (sd, or autoregressive after a depth-0 rejection)",
    k: 1,
    chain: chainOrder1,
  },
  { verifier: kseqBlockUnitRho, label: "kseqBlockUnitRho", k: 4, chain: chainOrder1 },
  { verifier: kseqBlockIndependentChildren, label: "kseqBlockIndependentChildren", k: 4, chain: chainOrder1 },
];
for (const w of wrong) {
  const c: Config = {
    chain: w.chain(),
    method: w.verifier.name as DecodeMethod,
    k: w.k,
    draftLength: 3,
    warp: {},
    kernel: referenceKernel,
    verifier: Object.assign(Object.create(w.verifier), { label: w.label }),
    seed: 9000 + wrong.indexOf(w),
  };
  Deno.test(`power check: the wrong verifier ${w.label} with k=${w.k} is rejected at the same N and threshold`, async () => {
    const { pValue, statistic, df } = await exactnessPValue(c);
    console.log(
      `  p = ${pValue.toExponential(3)} (G = ${statistic.toFixed(2)}, df = ${df}, N = ${N}, threshold ${
        THRESHOLD.toExponential(2)
      })`,
    );
    assert.ok(pValue < THRESHOLD, `p = ${pValue} >= threshold ${THRESHOLD}: the test cannot see this error`);
  });
}
