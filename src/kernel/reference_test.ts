import assert from "node:assert/strict";
import {
  inverseCdf,
  kseqSelectReference,
  residualReference,
  sampleReference,
  solveRhoReference,
  specInferSelectReference,
  warpReference,
} from "./reference.ts";
import type { Probs } from "./types.ts";
import { Random } from "../random.ts";
import { f32Row } from "./_testing.ts";

const close = (a: number, b: number, tol = 1e-12) =>
  assert.ok(Math.abs(a - b) <= tol, `${a} != ${b} (tol ${tol})`);

function randomRow(rng: Random, n: number, zeroChance: number): Float64Array {
  const row = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    row[i] = rng.next() < zeroChance ? 0 : rng.next() ** 2;
    sum += row[i];
  }
  if (sum === 0) row[Math.floor(rng.next() * n)] = sum = 1;
  return row.map((x) => x / sum);
}

/** Enumerates the k-tuples of tokens in [0, n). */
function* tuples(n: number, k: number): Generator<number[]> {
  const t = new Array(k).fill(0);
  for (;;) {
    yield t.slice();
    let i = k - 1;
    while (i >= 0 && ++t[i] === n) t[i--] = 0;
    if (i < 0) return;
  }
}

Deno.test("solveRho matches a case solved by hand: p = (1/2, 1/2), q = (1, 0), k = 2", () => {
  // β(ρ) = 1/(2ρ); 1 − (1 − β)^2 = ρβ = 1/2 gives ρ* = 1 + √2/2, β = 1 − √2/2, acceptance 1/2.
  const s = solveRhoReference(new Float64Array([0.5, 0.5]), new Float64Array([1, 0]), 2);
  close(s.rho, 1 + Math.SQRT2 / 2);
  close(s.beta, 1 - Math.SQRT2 / 2);
  close(s.acceptance, 0.5);
});

Deno.test("solveRho gives rho 1 for k = 1, identical rows and disjoint supports", () => {
  const p = new Float64Array([0.2, 0.3, 0.5]);
  const q = new Float64Array([0.6, 0.3, 0.1]);
  const one = solveRhoReference(p, q, 1);
  assert.equal(one.rho, 1);
  close(one.beta, 0.2 + 0.3 + 0.1);
  assert.deepEqual(solveRhoReference(p, p, 5), { rho: 1, beta: 1, acceptance: 1 });
  const disjoint = solveRhoReference(new Float64Array([1, 0]), new Float64Array([0, 1]), 3);
  assert.equal(disjoint.rho, 1);
  assert.equal(disjoint.acceptance, 0);
});

Deno.test("solveRho returns the smallest rho meeting the exactness condition", () => {
  const rng = new Random(11);
  for (let t = 0; t < 500; t++) {
    const n = 2 + Math.floor(rng.next() * 12);
    const k = 2 + Math.floor(rng.next() * 7);
    const p = randomRow(rng, n, 0.2);
    const q = randomRow(rng, n, 0.2);
    const { rho } = solveRhoReference(p, q, k);
    const gap = (r: number) => {
      let beta = 0;
      for (let i = 0; i < n; i++) beta += Math.min(q[i], p[i] / r);
      return 1 - (1 - beta) ** k - r * beta;
    };
    assert.ok(rho >= 1 && rho <= k, `rho ${rho} outside [1, ${k}]`);
    assert.ok(gap(rho) <= 1e-12, `condition fails at rho* = ${rho}: gap ${gap(rho)}`);
    if (rho > 1) {
      assert.ok(gap(rho * (1 - 1e-9)) > 0, `a smaller rho than ${rho} also satisfies the condition`);
    }
  }
});

/** Σ with Neumaier compensation. */
function nsum(n: number, term: (i: number) => number): number {
  let s = 0, c = 0;
  for (let i = 0; i < n; i++) {
    const x = term(i);
    const t = s + x;
    c += Math.abs(s) >= Math.abs(x) ? s - t + x : x - t + s;
    s = t;
  }
  return s + c;
}

/**
 * The float64 naive ρ*: f = e − d^k evaluated directly over every token (e = Σ max(0, p − ρq)/Σp,
 * d = Σ max(0, q − p/ρ)/Σq), the root's segment found by binary search over the exactly sorted
 * ratios in (1, k), then bisected.
 */
function naiveRho(p: Probs, q: Probs, k: number): number {
  const n = p.length;
  const sp = nsum(n, (i) => p[i]), sq = nsum(n, (i) => q[i]);
  const f = (r: number) =>
    Math.min(1, nsum(n, (i) => Math.max(0, p[i] - r * q[i])) / sp) -
    Math.min(1, nsum(n, (i) => Math.max(0, q[i] - p[i] / r)) / sq) ** k;
  if (k === 1 || f(1) <= 0) return 1;
  const ratios: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = p[i] / q[i];
    if (p[i] > 0 && q[i] > 0 && r > 1 && r < k) ratios.push(r);
  }
  ratios.sort((x, y) => x - y);
  let l = 0, h = ratios.length;
  while (l < h) {
    const mid = (l + h) >> 1;
    if (f(ratios[mid]) <= 0) h = mid;
    else l = mid + 1;
  }
  let hi = l < ratios.length ? ratios[l] : k;
  let lo = l > 0 ? ratios[l - 1] : 1;
  for (;;) {
    const mid = (lo + hi) / 2;
    if (mid <= lo || mid >= hi) break;
    if (f(mid) <= 0) hi = mid;
    else lo = mid;
  }
  return hi;
}

// Row sums below 1 made the old f = 1 − (1 − β)^k − ρβ give ρ* ≈ 1 + (1 − Σq)^(1/k) for p = q.
const SCALES = [1, 1 - 3e-7, 1 + 3e-7, 1 - 1e-6];

Deno.test("solveRho gives rho exactly 1 and acceptance 1 for identical float32 rows whose sum is not 1", () => {
  const rng = new Random(14);
  let offOne = 0;
  for (const n of [1, 2, 7, 100, 5000, 50000]) {
    for (const scale of SCALES) {
      const p = f32Row(rng, n, scale);
      const sum = nsum(n, (i) => p[i]);
      if (sum !== 1) offOne++;
      for (let k = 2; k <= 8; k++) {
        const s = solveRhoReference(p, p, k);
        assert.equal(s.rho, 1, `n=${n} k=${k} Σ=${sum}: rho ${s.rho}`);
        close(s.acceptance, 1);
        close(s.beta, sum);
        // The residual is never drawn (acceptance 1); it is p itself.
        const res = residualReference(p, p, k, s);
        for (let i = 0; i < n; i++) close(res[i], p[i] / sum, 1e-9);
      }
    }
  }
  assert.ok(offOne >= 18, `only ${offOne} rows with a sum other than 1`);
});

Deno.test("solveRho matches the float64 naive solve on near-identical float32 rows to 1e-12", () => {
  // q = p·(1 + 1e-7·u), u uniform in [−1, 1]: β ≈ 1 − 1e-8, where the old f cancelled.
  const rng = new Random(15);
  let worst = 0, aboveOne = 0;
  for (const n of [7, 100, 5000, 50000]) {
    for (const scale of n === 50000 ? SCALES.slice(1, 3) : SCALES) {
      const p = f32Row(rng, n, scale);
      const q = Float32Array.from(p, (x) => x * (1 + 1e-7 * (2 * rng.next() - 1)));
      for (let k = 2; k <= 8; k++) {
        const s = solveRhoReference(p, q, k);
        const want = naiveRho(p, q, k);
        const e = Math.abs(s.rho - want);
        worst = Math.max(worst, e);
        if (want > 1) aboveOne++;
        assert.ok(e <= 1e-12, `n=${n} k=${k} scale=${scale}: rho ${s.rho} vs naive ${want}`);
        assert.ok(s.acceptance > 1 - 1e-9 && s.acceptance <= 1, `acceptance ${s.acceptance}`);
      }
    }
  }
  assert.ok(aboveOne > 0);
  console.log(`near-identical rows: worst |rho - naive| ${worst.toExponential(2)}`);
});

Deno.test("K-SEQ output is exactly p, by enumerating every candidate tuple", () => {
  const rng = new Random(12);
  for (let t = 0; t < 200; t++) {
    const n = 2 + Math.floor(rng.next() * 3);
    const k = 1 + Math.floor(rng.next() * 3);
    const p = randomRow(rng, n, 0.25);
    const q = randomRow(rng, n, 0.25);
    const sol = solveRhoReference(p, q, k);
    const residual = residualReference(p, q, k, sol);
    const out = new Float64Array(n);
    for (const xs of tuples(n, k)) {
      let reach = xs.reduce((w, x) => w * q[x], 1);
      for (const x of xs) {
        const accept = q[x] > 0 ? Math.min(1, p[x] / (sol.rho * q[x])) : 0;
        out[x] += reach * accept;
        reach *= 1 - accept;
      }
      for (let y = 0; y < n; y++) out[y] += reach * residual[y];
    }
    for (let y = 0; y < n; y++) close(out[y], p[y], 1e-12);
  }
});

Deno.test("SpecInfer output is exactly p with and without replacement, by enumeration", () => {
  const rng = new Random(13);
  for (let t = 0; t < 200; t++) {
    const n = 2 + Math.floor(rng.next() * 3);
    const p = randomRow(rng, n, 0.25);
    const q = randomRow(rng, n, 0.25);
    const support = q.filter((x) => x > 0).length;
    for (const wor of [false, true]) {
      const k = Math.min(1 + Math.floor(rng.next() * 3), wor ? support : 3);
      const out = new Float64Array(n);
      for (const xs of tuples(n, k)) {
        if (wor && new Set(xs).size < k) continue;
        // Probability of drawing this tuple: i.i.d., or sequentially renormalised without replacement.
        let reach = 1;
        let left = 1;
        for (const x of xs) {
          reach *= q[x] / (wor ? left : 1);
          if (wor) left -= q[x];
        }
        if (reach === 0) continue;
        let target = Float64Array.from(p);
        let draft = Float64Array.from(q);
        for (const x of xs) {
          const accept = Math.min(1, target[x] / draft[x]);
          out[x] += reach * accept;
          reach *= 1 - accept;
          const next = target.map((v, y) => Math.max(0, v - draft[y]));
          const s = next.reduce((a, b) => a + b, 0);
          if (s > 0) target = next.map((v) => v / s);
          if (wor) {
            const left = 1 - draft[x];
            draft = draft.map((v, y) => (y === x ? 0 : v / left));
          }
        }
        for (let y = 0; y < n; y++) out[y] += reach * target[y];
      }
      for (let y = 0; y < n; y++) close(out[y], p[y], 1e-12);
    }
  }
});

Deno.test("kseqSelect accepts in order and falls back to the residual", () => {
  const p = new Float64Array([0.5, 0.5]);
  const q = new Float64Array([1, 0]);
  const rho = 1 + Math.SQRT2 / 2;
  // Candidate 0 is accepted iff u·ρ·1 < 0.5.
  assert.equal(kseqSelectReference(p, q, [0, 0], [0.9, 0.2, 0.5]).draftIndex, 1);
  assert.equal(kseqSelectReference(p, q, [0, 0], [0.5 / rho - 1e-9, 0.9, 0.5]).draftIndex, 0);
  const rejected = kseqSelectReference(p, q, [0, 0], [0.9, 0.9, 0.01]);
  assert.deepEqual([rejected.token, rejected.draftIndex], [1, -1]); // the residual is (0, 1)
});

Deno.test("specInferSelect accepts with probability p/q and draws the recursive residual", () => {
  const p = new Float64Array([0.25, 0.75]);
  const q = new Float64Array([0.5, 0.5]);
  assert.deepEqual(specInferSelectReference(p, q, [0], [0.49, 0.9], false), { token: 0, draftIndex: 0 });
  assert.deepEqual(specInferSelectReference(p, q, [0], [0.5, 0.0], false), { token: 1, draftIndex: -1 });
  // Without replacement the second candidate is tested against q without token 0 (q_2 = (0, 1)).
  assert.deepEqual(specInferSelectReference(p, q, [0, 1], [0.9, 0.99, 0], true), { token: 1, draftIndex: 1 });
});

Deno.test("inverseCdf skips zero weights and clamps past the end", () => {
  assert.equal(inverseCdf([0, 0.5, 0, 0.5, 0], 0), 1);
  assert.equal(inverseCdf([0, 0.5, 0, 0.5, 0], 0.5), 3);
  assert.equal(inverseCdf([0, 0.5, 0, 0.5, 0], 0.9999999999999999), 3);
  assert.equal(inverseCdf([0, 0], 0.3), -1);
});

Deno.test("sample draws distinct ids without replacement and rejects too many draws", () => {
  const probs = new Float64Array([0.1, 0, 0.6, 0.3]);
  assert.deepEqual([...sampleReference(probs, [0.05, 0.05, 0.05], true)], [0, 2, 3]);
  assert.deepEqual([...sampleReference(probs, [0.05, 0.05], false)], [0, 0]);
  assert.throws(() => sampleReference(probs, [0.1, 0.1, 0.1, 0.1], true), RangeError);
});

Deno.test("warp applies temperature, top-k with ties, top-p with ties, and greedy", () => {
  const logits = new Float32Array([1, 2, 2, 0, -Infinity]);
  const hot = warpReference(logits, { temperature: 2 });
  const z = [0.5, 1, 1, 0].map(Math.exp);
  const total = z.reduce((a, b) => a + b);
  z.forEach((v, i) => close(hot[i], v / total));
  assert.equal(hot[4], 0);
  // top-k = 1 keeps both tied maxima.
  assert.deepEqual([...warpReference(logits, { topK: 1 })], [0, 0.5, 0.5, 0, 0]);
  // top-p = 0.5: the first of the tied pair reaches 0.5·mass? No: each holds e²/(e + 2e² + 1) ≈ 0.42, so
  // two are needed, and both are kept.
  const nucleus = warpReference(logits, { topP: 0.5 });
  assert.deepEqual([...nucleus], [0, 0.5, 0.5, 0, 0]);
  assert.deepEqual([...warpReference(logits, { temperature: 0 })], [0, 1, 0, 0, 0]);
});

Deno.test("bad input gets a typed error naming the problem", () => {
  const p = new Float64Array([0.5, 0.5]);
  assert.throws(() => warpReference(new Float32Array([0, NaN])), {
    name: "RangeError",
    message: /logit 1 is NaN/,
  });
  assert.throws(() => warpReference(new Float32Array([0, Infinity])), /logit 1 is \+Infinity/);
  assert.throws(() => warpReference(new Float32Array([-Infinity])), /every logit is -Infinity/);
  assert.throws(() => warpReference(new Float32Array([0]), { temperature: -1 }), /temperature/);
  assert.throws(() => warpReference(new Float32Array([0]), { topP: 0 }), /topP must be in \(0, 1\]/);
  assert.throws(() => warpReference(new Float32Array([0]), { topP: 1.5 }), /topP/);
  assert.throws(() => warpReference([0, 1] as unknown as Float32Array), TypeError);
  assert.throws(() => solveRhoReference(p, new Float64Array([1]), 2), /vocab mismatch/);
  assert.throws(() => solveRhoReference(p, p, 0), /k must be an integer/);
  assert.throws(() => kseqSelectReference(p, p, [2], [0.1, 0.1]), /outside the vocabulary/);
  assert.throws(() => kseqSelectReference(p, p, [], [0.1]), /no candidates/);
  assert.throws(() => kseqSelectReference(p, p, [0], [0.1]), /expected 2 uniforms/);
  assert.throws(() => kseqSelectReference(p, p, [0], [0.1, 1]), /outside \[0, 1\)/);
  assert.throws(() => solveRhoReference(new Float64Array([-0.5, 1.5]), p, 2), /probability 0 is -0.5/);
});
