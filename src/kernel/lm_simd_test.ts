// The kernel backend's simd128 layers. The 8-bit linear layer (`spectr_lm_quantize_rows` + `spectr_lm_linear_q8`, the simd128
// code the `kernel` backend runs; the crate's host tests cover only its scalar fallback) against
// sums written from the definition in wasm/src/lm.rs, in float64:
//   xq[r, i] = round-half-away(x[r, i] / s), s = max|x[r, block]| / 127, clamped to ±127
//   y[r, j]  = Σ_b scales[j,b]·s[r,b]·Σ_{i in b} codes[j,i]·xq[r,i] + Σ_b mins[j,b]·Σ_{i in b} x[r,i] + bias[j]
// Shapes cover every row count of a group (1..8) and past it (9..17: two groups), every remainder of
// the kernel's 4-block scale groups (blocks mod 4 = 0..3) and odd column counts.
// Threshold: float32 accumulation of ≤ 48 block terms, each exact before its one rounding, so the
// error is a few ulps of Σ|terms|: |y − ref| ≤ 1e-5 · Σ|terms| (float32 ε = 1.2e-7; 48 terms).
// Power checks: the same comparison rejects outputs computed with the 4-block scale lanes rotated,
// with a tail block dropped, and with one row's scales taken from the next row.
import assert from "node:assert/strict";
import { bindExports } from "./wasm_abi.ts";
import { kernelWasmUrl, readBytes } from "./wasm_load.ts";

const BLOCK = 32;

async function exports() {
  const { instance } = await WebAssembly.instantiate(await readBytes(kernelWasmUrl()), {});
  return bindExports(instance);
}

/** A deterministic generator (LCG), uniform in [0, 1). */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

interface Case {
  m: number;
  k: number;
  n: number;
  mins: boolean;
  bias: boolean;
}

interface Inputs {
  x: Float32Array;
  codes: Int8Array;
  scales: Float32Array;
  mins?: Float32Array;
  bias?: Float32Array;
}

function inputs(c: Case, seed: number): Inputs {
  const rnd = lcg(seed);
  const blocks = c.k / BLOCK;
  const x = new Float32Array(c.m * c.k);
  for (let i = 0; i < x.length; i++) x[i] = (rnd() - 0.5) * 6 * (rnd() < 0.02 ? 30 : 1); // a few outliers
  const codes = new Int8Array(c.n * c.k);
  for (let i = 0; i < codes.length; i++) codes[i] = Math.floor(rnd() * 255) - 127;
  const scales = new Float32Array(c.n * blocks);
  for (let i = 0; i < scales.length; i++) scales[i] = 0.001 + rnd() * 0.05;
  const mins = c.mins ? Float32Array.from({ length: c.n * blocks }, () => (rnd() - 0.5) * 0.2) : undefined;
  const bias = c.bias ? Float32Array.from({ length: c.n }, () => rnd() - 0.5) : undefined;
  return { x, codes, scales, mins, bias };
}

/** The activation quantization of lm.rs, from its definition. */
function quantize(x: Float32Array, m: number, k: number) {
  const blocks = k / BLOCK;
  const xq = new Int16Array(m * k), xs = new Float64Array(m * blocks), xsum = new Float64Array(m * blocks);
  for (let b = 0; b < m * blocks; b++) {
    let amax = 0, sum = 0;
    for (let i = 0; i < BLOCK; i++) {
      const a = x[b * BLOCK + i];
      amax = Math.max(amax, Math.abs(a));
      sum += a;
    }
    const s = Math.fround(amax / 127);
    const inv = s > 0 ? Math.fround(1 / s) : 0;
    for (let i = 0; i < BLOCK; i++) {
      const t = Math.fround(x[b * BLOCK + i] * inv);
      const r = t >= 0 ? Math.trunc(Math.fround(t + 0.5)) : Math.trunc(Math.fround(t - 0.5));
      xq[b * BLOCK + i] = Math.max(-127, Math.min(127, r));
    }
    xs[b] = s;
    xsum[b] = sum;
  }
  return { xq, xs, xsum };
}

/** y and Σ|terms| in float64 from the definition (with `scalesOf` choosing the scale a block uses). */
function reference(
  c: Case,
  inp: Inputs,
  q: ReturnType<typeof quantize>,
  scalesOf: (j: number, b: number, r: number) => number = (j, b) => inp.scales[j * (c.k / BLOCK) + b],
  dropBlock = -1,
) {
  const blocks = c.k / BLOCK;
  const y = new Float64Array(c.m * c.n), mag = new Float64Array(c.m * c.n);
  for (let r = 0; r < c.m; r++) {
    for (let j = 0; j < c.n; j++) {
      let s = inp.bias?.[j] ?? 0, a = Math.abs(s);
      for (let b = 0; b < blocks; b++) {
        if (b === dropBlock) continue;
        let d = 0;
        for (let i = 0; i < BLOCK; i++) {
          d += inp.codes[j * c.k + b * BLOCK + i] * q.xq[r * c.k + b * BLOCK + i];
        }
        const t = scalesOf(j, b, r) * q.xs[r * blocks + b] * d;
        s += t;
        a += Math.abs(t);
        if (inp.mins) {
          const u = inp.mins[j * blocks + b] * q.xsum[r * blocks + b];
          s += u;
          a += Math.abs(u);
        }
      }
      y[r * c.n + j] = s;
      mag[r * c.n + j] = a;
    }
  }
  return { y, mag };
}

/** The largest |y − ref| / Σ|terms| over all outputs. */
function worst(y: Float32Array, ref: { y: Float64Array; mag: Float64Array }): number {
  let w = 0;
  for (let i = 0; i < y.length; i++) w = Math.max(w, Math.abs(y[i] - ref.y[i]) / (ref.mag[i] + 1e-30));
  return w;
}

function run(e: Awaited<ReturnType<typeof exports>>, c: Case, inp: Inputs) {
  const blocks = c.k / BLOCK;
  let top = (e.spectr_heap_base() + 63) & ~63;
  const place = (bytes: number) => {
    const p = top;
    top = (top + bytes + 63) & ~63;
    const need = top - e.memory.buffer.byteLength;
    if (need > 0) e.memory.grow(Math.ceil(need / 65536));
    return p;
  };
  const px = place(c.m * c.k * 4), pq = place(c.m * c.k * 2), ps = place(c.m * blocks * 4);
  const psum = place(c.m * blocks * 4), pc = place(c.n * c.k), pw = place(c.n * blocks * 4);
  const pmin = inp.mins ? place(c.n * blocks * 4) : 0, pb = inp.bias ? place(c.n * 4) : 0;
  const po = place(c.m * c.n * 4);
  const buf = e.memory.buffer;
  new Float32Array(buf, px, c.m * c.k).set(inp.x);
  new Int8Array(buf, pc, c.n * c.k).set(inp.codes);
  new Float32Array(buf, pw, c.n * blocks).set(inp.scales);
  if (inp.mins) new Float32Array(buf, pmin, c.n * blocks).set(inp.mins);
  if (inp.bias) new Float32Array(buf, pb, c.n).set(inp.bias);
  assert.equal(e.spectr_lm_quantize_rows(px, c.m, c.k, pq, ps, psum), 0);
  const xq = new Int16Array(buf, pq, c.m * c.k).slice();
  const xs = new Float32Array(buf, ps, c.m * blocks).slice();
  assert.equal(e.spectr_lm_linear_q8(pq, ps, psum, c.m, c.k, pc, pw, pmin, c.n, pb, po), 0);
  return { y: new Float32Array(buf, po, c.m * c.n).slice(), xq, xs };
}

const TOLERANCE = 1e-5;

Deno.test("kernel q8 linear: every row count 1..17, every 4-block remainder, odd columns — the definition's sums", async () => {
  const e = await exports();
  let cases = 0, maxErr = 0;
  for (let m = 1; m <= 17; m++) {
    for (const k of [32, 64, 96, 128, 160, 576]) {
      for (const n of [1, 3, 6]) {
        const c: Case = { m, k, n, mins: (m + n) % 2 === 0, bias: m % 3 === 0 };
        const inp = inputs(c, 1000 * m + k + n);
        const q = quantize(inp.x, m, k);
        const got = run(e, c, inp);
        assert.deepEqual(got.xq, q.xq, `activation codes, case ${JSON.stringify(c)}`);
        assert.deepEqual(got.xs, Float32Array.from(q.xs), `activation scales, case ${JSON.stringify(c)}`);
        const err = worst(got.y, reference(c, inp, q));
        assert.ok(err <= TOLERANCE, `case ${JSON.stringify(c)}: error ${err.toExponential(2)} of Σ|terms|`);
        maxErr = Math.max(maxErr, err);
        cases++;
      }
    }
  }
  console.log(`${cases} cases, worst error ${maxErr.toExponential(2)} of Σ|terms| (bound ${TOLERANCE})`);
});

Deno.test("kernel q8 linear: power checks — rotated scale lanes, a dropped tail block, another row's scales are caught", async () => {
  const e = await exports();
  const c: Case = { m: 5, k: 224, n: 4, mins: false, bias: false }; // 7 blocks: one group of 4 + a tail of 3
  const inp = inputs(c, 42);
  const q = quantize(inp.x, c.m, c.k);
  const got = run(e, c, inp);
  const blocks = c.k / BLOCK;
  assert.ok(worst(got.y, reference(c, inp, q)) <= TOLERANCE);
  const rotated = reference(c, inp, q, (j, b) => inp.scales[j * blocks + (b < 4 ? (b + 1) % 4 : b)]);
  assert.ok(worst(got.y, rotated) > 100 * TOLERANCE, "scales rotated within the 4-block group");
  assert.ok(
    worst(got.y, reference(c, inp, q, undefined, 6)) > 100 * TOLERANCE,
    "the last tail block dropped",
  );
  const otherRow = reference(c, inp, { ...q, xs: q.xs.map((_, i) => q.xs[(i + blocks) % q.xs.length]) });
  assert.ok(worst(got.y, otherRow) > 100 * TOLERANCE, "activation scales of the next row");
});

// SwiGLU's `gate ← gate · σ(gate) · up` (`spectr_lm_silu_mul`: four lanes at a time, the rest one by
// one) against float64 σ from Math.exp. Threshold: exp_f32's polynomial is within a few ulps, and the
// products add one rounding each: |y − ref| ≤ 1e-6 · |ref| + 1e-30. Every length 1..13 (each lane
// remainder), arguments over ±90 (σ saturating both ways, exp's lower cut at −87.3). Power check: σ(−g)
// in place of σ(g) is rejected by the same comparison.
Deno.test("kernel silu_mul: every length 1..13 and arguments over ±90 — float64 σ within 1e-6", async () => {
  const e = await exports();
  const rnd = lcg(7);
  const base = (e.spectr_heap_base() + 63) & ~63;
  const worstOf = (g: Float32Array, u: Float32Array, y: Float32Array, flip = false) => {
    let w = 0;
    for (let i = 0; i < g.length; i++) {
      const s = 1 / (1 + Math.exp(flip ? g[i] : -g[i]));
      const ref = g[i] * s * u[i];
      w = Math.max(w, Math.abs(y[i] - ref) / (Math.abs(ref) + 1e-30));
    }
    return w;
  };
  let worst = 0, flipped = Infinity;
  for (let n = 1; n <= 13; n++) {
    const g = Float32Array.from({ length: n }, (_, i) => i === 0 ? (n % 2 ? 90 : -90) : (rnd() - 0.5) * 24);
    const u = Float32Array.from({ length: n }, () => rnd() * 4 - 2);
    new Float32Array(e.memory.buffer, base, n).set(g);
    new Float32Array(e.memory.buffer, base + 4096, n).set(u);
    assert.equal(e.spectr_lm_silu_mul(base, base + 4096, n), 0);
    const y = new Float32Array(e.memory.buffer, base, n).slice();
    worst = Math.max(worst, worstOf(g, u, y));
    if (n >= 4) flipped = Math.min(flipped, worstOf(g, u, y, true));
  }
  console.log(
    `silu_mul: worst relative error ${worst.toExponential(2)}; with σ(−g): ${flipped.toExponential(2)}`,
  );
  assert.ok(worst <= 1e-6, `worst relative error ${worst}`);
  assert.ok(flipped > 1e-2, "power: σ(−g) is rejected");
});
