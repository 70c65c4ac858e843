/**
 * Token-level exactness: for every (p, q, k) configuration in `_cases.ts` and every verifier, the
 * output token of one verification must be distributed exactly as the target p. The test draws the
 * candidates itself (its own inverse-CDF sampler over q, independent of the kernel's `sample`),
 * feeds seeded uniforms, counts output tokens, and G-tests the counts against p.
 *
 * Threshold: family-wise α = 1e-3, Bonferroni-corrected over every (configuration, verifier,
 * kernel) run of a correct verifier in this file: threshold = 1e-3 / M, with M computed below from
 * the run plan (`FAMILY_SIZE`) and printed. Small-V configurations run on every kernel under test,
 * large-V ones on the fastest only: with the reference and the WASM kernel, M = 136 (threshold
 * ≈ 7.4e-6); with the reference alone, M = 76 (≈ 1.3e-5).
 *
 * Draws: 100,000 per run. Large vocabularies (V ≥ 1,000) run on `fastestKernel()` only (the WASM
 * kernel when present): there a verifier call costs O(V), so the rows are placed in the kernel's
 * memory once (`residentRows`) and K-SEQ's ρ* solve is hoisted out of the draw loop
 * (`hoistedSelect`). Only when the float64 reference is the only kernel do the large
 * configurations run at the reduced counts of `TokenCase.large`, marked "*" in the printed table
 * (SPECTR_FULL_STATS=1 forces 100,000 there too).
 *
 * Power check: the same G-test, at the same draw count and threshold, must reject two
 * deliberately wrong K-SEQ variants (`_wrong_verifiers.ts`) on configurations where their exact
 * output distribution (computed analytically, `kseqShapedOutput`) differs from p.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Random } from "../src/random.ts";
import { referenceKernel } from "../src/kernel/reference.ts";
import type { Kernel, Probs, Selection } from "../src/kernel/types.ts";
import { getVerifier, verifiers } from "../src/verify/mod.ts";
import type { LevelVerifier as Verifier } from "../src/verify/types.ts";
import { binomialZ, gTest } from "./_stats.ts";
import { kseqNaiveResidual, kseqRhoOne } from "./_wrong_verifiers.ts";
import { fastestKernel, kernelsUnderTest } from "./_kernels.ts";
import {
  kseqShapedOutput,
  normalise,
  specInferAcceptance,
  TOKEN_CASES,
  type TokenCase,
  totalVariation,
} from "./_cases.ts";

/** Draws per (configuration, verifier, kernel) run. */
const DRAWS = 100_000;
/** SPECTR_FULL_STATS=1: large-V configurations too run at `DRAWS` (slow: minutes). */
const FULL_STATS = Deno.env.get("SPECTR_FULL_STATS") === "1";
/** Family-wise false-alarm rate of the whole file. */
const FAMILY_ALPHA = 1e-3;
/** Acceptance-rate checks: |z| must stay below this many binomial standard deviations. */
const ACCEPTANCE_SIGMAS = 4;

// ---------------------------------------------------------------------------------------------
// The test's own candidate sampler: a CDF of q built once, binary-searched per draw.

/** Inverse-CDF sampling from q, i.i.d. or without replacement (sequential conditional draws). */
class DraftSampler {
  readonly #q: Probs;
  readonly #cdf: Float64Array;
  readonly support: number;

  constructor(q: Probs) {
    this.#q = q;
    this.#cdf = new Float64Array(q.length);
    let c = 0;
    let support = 0;
    for (let x = 0; x < q.length; x++) {
      c += q[x];
      this.#cdf[x] = c;
      if (q[x] > 0) support++;
    }
    this.support = support;
  }

  /**
   * Fills `out` with k draws. Without replacement, draw i is from q conditioned on not being one
   * of the earlier draws: the smallest x with C(x) − Σ_{r drawn, r ≤ x} q(r) > u·(mass left).
   */
  draw(rand: Random, out: number[], withoutReplacement: boolean): void {
    const q = this.#q;
    const cdf = this.#cdf;
    const last = cdf.length - 1;
    for (let i = 0; i < out.length; i++) {
      // Cumulative mass up to x with the earlier draws (out[0..i)) removed.
      const left = (x: number) => {
        let c = cdf[x];
        if (withoutReplacement) { for (let j = 0; j < i; j++) if (out[j] <= x) c -= q[out[j]]; }
        return c;
      };
      const target = rand.next() * left(last);
      let lo = 0;
      let hi = last;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (left(mid) > target) hi = mid;
        else lo = mid + 1;
      }
      let x = lo;
      // Rounding guard: never return a zero-mass or already drawn token.
      const taken = (y: number) => {
        if (!(q[y] > 0)) return true;
        if (withoutReplacement) { for (let j = 0; j < i; j++) if (out[j] === y) return true; }
        return false;
      };
      while (x < last && taken(x)) x++;
      while (x > 0 && taken(x)) x--;
      if (taken(x)) throw new Error("test sampler: no token left to draw");
      out[i] = x;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// One run: many verifications, output tokens counted.

interface RunResult {
  counts: Float64Array;
  accepted: number;
  draws: number;
  /** Selections that broke the interface contract (token out of range, wrong draftIndex). */
  malformed: number;
}

function runVerifications(
  kernel: Kernel,
  verifier: Verifier,
  p: Probs,
  q: Probs,
  k: number,
  draws: number,
  seed: number,
): RunResult {
  const sampler = new DraftSampler(q);
  const wor = verifier.draftSampling === "without-replacement";
  const rand = new Random(seed);
  const candidates = new Array<number>(k).fill(0);
  const uniforms = new Float64Array(k + 1);
  const counts = new Float64Array(p.length);
  ({ p, q } = residentRows(kernel, p, q));
  const select = hoistedSelect(kernel, verifier, p, q, k);
  let accepted = 0;
  let malformed = 0;
  for (let n = 0; n < draws; n++) {
    sampler.draw(rand, candidates, wor);
    for (let i = 0; i <= k; i++) uniforms[i] = rand.next();
    const { token, draftIndex } = select(candidates, uniforms);
    if (!(Number.isInteger(token) && token >= 0 && token < p.length)) {
      malformed++;
      continue;
    }
    if (!(Number.isInteger(draftIndex) && draftIndex >= -1 && draftIndex < k)) malformed++;
    else if (draftIndex >= 0 && candidates[draftIndex] !== token) malformed++;
    counts[token]++;
    if (draftIndex >= 0) accepted++;
  }
  return { counts, accepted, draws, malformed };
}

/**
 * The WASM kernel copies p and q into its memory on every call (O(V)); rows already placed in its
 * `rowViews` are used in place. Same values (the rows are float32 already), no copy per draw.
 */
function residentRows(kernel: Kernel, p: Probs, q: Probs): { p: Probs; q: Probs } {
  const views =
    (kernel as Kernel & { rowViews?: (n: number) => { target: Float32Array; draft: Float32Array } })
      .rowViews?.(p.length);
  if (!views || !(p instanceof Float32Array && q instanceof Float32Array)) return { p, q };
  views.target.set(p);
  views.draft.set(q);
  return { p: views.target, q: views.draft };
}

/**
 * `kseq.select` and `sd.select` are `kernel.kseqSelect(p, q, candidates, uniforms)`, which solves ρ*
 * for (p, q, k) on every call (O(V)). Every draw here has the same (p, q, k), so the solve is hoisted
 * out of the loop and its solution passed in: the same decision, checked on the first draws against
 * the verifier itself. The other verifiers run through `verifier.select` unchanged.
 */
function hoistedSelect(
  kernel: Kernel,
  verifier: Verifier,
  p: Probs,
  q: Probs,
  k: number,
): (candidates: number[], uniforms: Float64Array) => Selection {
  if (verifier !== getVerifier("kseq") && verifier !== getVerifier("sd")) {
    return (candidates, uniforms) => verifier.select(kernel, p, q, candidates, uniforms);
  }
  const solution = kernel.solveRho(p, q, k);
  let checks = 200;
  return (candidates, uniforms) => {
    const selection = kernel.kseqSelect(p, q, candidates, uniforms, solution);
    if (checks > 0) {
      checks--;
      const direct = verifier.select(kernel, p, q, candidates, uniforms);
      assert.deepEqual([direct.token, direct.draftIndex], [selection.token, selection.draftIndex]);
    }
    return selection;
  };
}

/** K-SEQ's predicted acceptance 1 − (1 − β(ρ*))^k, ρ* from the float64 reference, β recomputed here. */
function kseqAcceptance(p: Probs, q: Probs, k: number): number {
  const { rho } = referenceKernel.solveRho(p, q, k);
  let beta = 0;
  for (let x = 0; x < p.length; x++) beta += Math.min(q[x], p[x] / rho);
  return 1 - (1 - beta) ** k;
}

function predictedAcceptance(name: string, p: Probs, q: Probs, k: number): number | undefined {
  if (name === "sd" || name === "kseq") return kseqAcceptance(p, q, k);
  if (name === "specinfer") return specInferAcceptance(p, q, k, false);
  // Exact enumeration of the rejected tokens, skipped (undefined) when it would be too costly.
  if (name === "specinfer-wor") return specInferAcceptance(p, q, k, true, Math.floor(2e6 / p.length));
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// The run plan, fixed before anything runs so the Bonferroni count is known up front.

/** The registry's token-level verifiers (those with a level rule, `select`), in registry order. */
const LEVEL_VERIFIERS = Object.values(verifiers).filter((v): v is Verifier => "select" in v);

const kernels = await kernelsUnderTest();
const fastest = await fastestKernel();

interface PlannedRun {
  tokenCase: TokenCase;
  caseIndex: number;
  kernel: Kernel;
  verifierName: string;
  k: number;
  draws: number;
  reduced: boolean;
}

function supportOf(row: Probs): number {
  let s = 0;
  for (let x = 0; x < row.length; x++) if (row[x] > 0) s++;
  return s;
}

const rowsCache = new Map<string, { p: Probs; q: Probs }>();
function rowsFor(tokenCase: TokenCase, kernel: Kernel): { p: Probs; q: Probs } {
  const key = `${tokenCase.name}/${kernel.name}`;
  let rows = rowsCache.get(key);
  if (!rows) {
    rows = tokenCase.rows(kernel);
    rowsCache.set(key, rows);
  }
  return rows;
}

const plan: PlannedRun[] = [];
TOKEN_CASES.forEach((tokenCase, caseIndex) => {
  const runKernels = tokenCase.large ? [fastest] : kernels;
  for (const kernel of runKernels) {
    const large = tokenCase.large;
    const draws = FULL_STATS || !large
      ? DRAWS
      : kernel.name === "wasm"
      ? large.wasmDraws
      : large.referenceDraws;
    const reduced = draws < DRAWS;
    const { q } = rowsFor(tokenCase, kernel);
    const names = LEVEL_VERIFIERS.filter((v) => v.maxCandidates >= tokenCase.k).map((v) => v.name);
    for (const verifierName of names) {
      const k = verifierName === "specinfer-wor" ? Math.min(tokenCase.k, supportOf(q)) : tokenCase.k;
      plan.push({ tokenCase, caseIndex, kernel, verifierName, k, draws, reduced });
    }
  }
});

/** Number of correct-verifier runs in the family, and the per-run threshold. */
const FAMILY_SIZE = plan.length;
const THRESHOLD = FAMILY_ALPHA / FAMILY_SIZE;

interface Row {
  config: string;
  verifier: string;
  kernel: string;
  vocab: number;
  k: number;
  draws: number;
  reduced: boolean;
  pValue: number;
  measured: number;
  predicted: number | undefined;
  z: number | undefined;
}
const table: Row[] = [];
const started = performance.now();

for (const run of plan) {
  const { tokenCase, kernel, verifierName, k, draws, reduced } = run;
  const note = reduced ? `, reduced to ${draws} draws for V=${tokenCase.vocab}` : "";
  Deno.test(
    `${verifierName} output on ${tokenCase.name} (V=${tokenCase.vocab}, k=${k}) is distributed as the target p ` +
      `[${kernel.name} kernel${note}]`,
    () => {
      const { p, q } = rowsFor(tokenCase, kernel);
      const verifier = getVerifier(verifierName) as Verifier; // a token-level rule
      const seed = 7919 * (run.caseIndex + 1) +
        101 * LEVEL_VERIFIERS.findIndex((v) => v.name === verifierName) +
        (kernel.name === "wasm" ? 13 : 0);
      const result = runVerifications(kernel, verifier, p, q, k, draws, seed);
      assert.equal(result.malformed, 0, "selections must name a valid token and the candidate it came from");
      const fit = gTest(result.counts, p);
      const measured = result.accepted / draws;
      const predicted = predictedAcceptance(verifierName, p, q, k);
      const z = predicted === undefined ? undefined : binomialZ(result.accepted, draws, predicted);
      table.push({
        config: tokenCase.name,
        verifier: verifierName,
        kernel: kernel.name,
        vocab: tokenCase.vocab,
        k,
        draws,
        reduced,
        pValue: fit.pValue,
        measured,
        predicted,
        z,
      });
      assert.equal(fit.impossible, 0, `${fit.impossible} outputs had target probability 0`);
      assert.ok(
        fit.pValue >= THRESHOLD,
        `G-test rejects p: G=${fit.statistic.toFixed(2)}, df=${fit.df}, p-value=${
          fit.pValue.toExponential(3)
        } < ${THRESHOLD.toExponential(3)}`,
      );
      if (z !== undefined) {
        assert.ok(
          Math.abs(z) < ACCEPTANCE_SIGMAS,
          `acceptance ${measured.toFixed(5)} vs predicted ${predicted!.toFixed(5)}: z=${z.toFixed(2)}`,
        );
      }
    },
  );
}

// ---------------------------------------------------------------------------------------------
// Power check: the same test must reject deliberately wrong verifiers.

interface PowerCase {
  verifier: Verifier;
  label: string;
  config: string;
  k: number;
  /** The wrong verifier's exact output distribution for (p, q, k), derived from its definition. */
  exactOutput(p: Probs, q: Probs, k: number): Float64Array;
}

const rhoOneOutput = (p: Probs, q: Probs, k: number) => {
  let beta = 0;
  for (let x = 0; x < p.length; x++) beta += Math.min(q[x], p[x]);
  const residual = referenceKernel.residual(p, q, k, { rho: 1, beta, acceptance: 1 - (1 - beta) ** k });
  return kseqShapedOutput(p, q, k, 1, residual);
};
const naiveResidualOutput = (p: Probs, q: Probs, k: number) => {
  const { rho } = referenceKernel.solveRho(p, q, k);
  const w = Array.from(p, (px, x) => Math.max(0, px - q[x]));
  return kseqShapedOutput(p, q, k, rho, w.some((v) => v > 0) ? normalise(w) : p);
};

const POWER_CASES: PowerCase[] = [
  { verifier: kseqRhoOne, label: "kseqRhoOne", config: "logits-T0.7-16", k: 4, exactOutput: rhoOneOutput },
  { verifier: kseqRhoOne, label: "kseqRhoOne", config: "flat-T2-50", k: 8, exactOutput: rhoOneOutput },
  {
    verifier: kseqNaiveResidual,
    label: "kseqNaiveResidual",
    config: "logits-T0.7-12",
    k: 2,
    exactOutput: naiveResidualOutput,
  },
  {
    verifier: kseqNaiveResidual,
    label: "kseqNaiveResidual",
    config: "topk10-vs-topp0.8-64",
    k: 2,
    exactOutput: naiveResidualOutput,
  },
];

const powerRows: { label: string; config: string; k: number; tv: number; pValue: number }[] = [];

for (const [i, power] of POWER_CASES.entries()) {
  const tokenCase = TOKEN_CASES.find((c) => c.name === power.config)!;
  Deno.test(
    `the same G-test rejects ${power.label} on ${power.config} (k=${power.k}) where its exact output is not p`,
    () => {
      assert.ok(power.k > 1);
      const { p, q } = rowsFor(tokenCase, fastest);
      const tv = totalVariation(power.exactOutput(p, q, power.k), p);
      assert.ok(tv > 0.01, `${power.label} is nearly exact here (TV=${tv}): not a power check`);
      const result = runVerifications(fastest, power.verifier, p, q, power.k, DRAWS, 424242 + i);
      const fit = gTest(result.counts, p);
      powerRows.push({ label: power.label, config: power.config, k: power.k, tv, pValue: fit.pValue });
      assert.ok(
        fit.pValue < THRESHOLD,
        `${power.label} passed the exactness test: p-value=${fit.pValue.toExponential(3)} ≥ ${
          THRESHOLD.toExponential(3)
        }`,
      );
    },
  );
}

// ---------------------------------------------------------------------------------------------

Deno.test("the token-level table and the minimum p-value over correct verifiers are reported", () => {
  const fmt = (x: number | undefined, d = 4) => (x === undefined ? "-" : x.toFixed(d));
  const pad = (s: string, n: number) => s.padEnd(n);
  console.log(
    `kernels: ${kernels.map((k) => k.name).join(", ")}; large-V runs on: ${fastest.name}; ` +
      `family size M=${FAMILY_SIZE}, per-run threshold=${THRESHOLD.toExponential(3)}`,
  );
  console.log(
    [
      pad("config", 26),
      pad("verifier", 14),
      pad("kernel", 9),
      pad("V", 6),
      pad("k", 2),
      pad("draws", 9),
      pad("p-value", 10),
    ]
      .join(" ") + " acceptance measured / predicted (z)",
  );
  for (const r of table) {
    console.log(
      [
        pad(r.config, 26),
        pad(r.verifier, 14),
        pad(r.kernel, 9),
        pad(String(r.vocab), 6),
        pad(String(r.k), 2),
        pad(String(r.draws) + (r.reduced ? "*" : ""), 9),
        pad(r.pValue.toExponential(2), 10),
      ].join(" ") + ` ${fmt(r.measured)} / ${fmt(r.predicted)} (${r.z === undefined ? "-" : r.z.toFixed(2)})`,
    );
  }
  if (table.some((r) => r.reduced)) {
    console.log(
      `* REDUCED draw count (< ${DRAWS}): large-V configuration, per-call cost O(V) on the ${fastest.name} kernel` +
        (fastest.name === "reference" ? " (no WASM kernel available)" : "") +
        "; SPECTR_FULL_STATS=1 runs the full count",
    );
  }
  for (const r of powerRows) {
    console.log(
      `power: ${r.label} on ${r.config} (k=${r.k}): exact TV from p=${r.tv.toFixed(4)}, p-value=${
        r.pValue.toExponential(2)
      }`,
    );
  }
  const minP = Math.min(...table.map((r) => r.pValue));
  console.log(
    `minimum p-value over ${table.length} correct runs: ${minP.toExponential(3)} (threshold ${
      THRESHOLD.toExponential(3)
    }); ` +
      `elapsed ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
  assert.equal(table.length, FAMILY_SIZE, "every planned run reported a result");
});
