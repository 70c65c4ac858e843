/**
 * Speed of one full K-SEQ verification step (warp both logit rows, solve ρ*, select, residual
 * draw) with the WASM SIMD kernel vs the float64 TypeScript reference vs the floor (per row one
 * SIMD max pass and one Σ exp(x − max) pass: no step can do less), at LM vocabulary sizes.
 *
 * Run: `deno bench --allow-read bench/micro/kernel_bench.ts` (or `deno task bench`, every bench/micro/ file). Each group's baseline is the WASM step, so
 * Deno prints how much slower the reference is and how much faster the floor is.
 *
 * Rows are LM-like: target logits −3.3·ln(rank + 1) + N(0, 1) in a random order, draft = target +
 * N(0, 0.5). Candidates are drawn from the draft; the uniforms are fixed, near 1 for the acceptance
 * tests when k ≥ 4 so that those cases take the residual path (each bench name says which path).
 *
 * @module
 */

import { kseqStepReference, sampleReference, warpReference } from "../../src/kernel/reference.ts";
import { loadKernel, type WasmKernel } from "../../src/kernel/wasm.ts";
import { Random } from "../../src/random.ts";

const kernel = await loadKernel({ fallback: false }) as WasmKernel;

for (const vocab of [8192, 50257, 151936]) {
  const rng = new Random(vocab);
  const target = new Float32Array(vocab);
  for (let i = 0; i < vocab; i++) target[i] = -1.1 * Math.log(i + 1) * 3 + rng.normal();
  for (let i = vocab - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [target[i], target[j]] = [target[j], target[i]];
  }
  const draft = target.map((x) => x + 0.5 * rng.normal());
  const q = warpReference(draft);
  for (const k of [1, 4, 8]) {
    const candidates = Array.from(sampleReference(q, Array.from({ length: k }, () => rng.next())));
    const uniforms = Array.from({ length: k + 1 }, (_, i) => (i < k && k >= 4 ? 0.999 : 0.5));
    const options = {};
    const once = kernel.kseqStep(target, draft, options, candidates, uniforms);
    const path = once.draftIndex === -1 ? "residual" : `accept #${once.draftIndex}`;
    const group = `V=${vocab} k=${k}`;
    const slow = vocab >= 50000;
    Deno.bench({
      name: `wasm kseqStep V=${vocab} k=${k} (${path})`,
      group,
      baseline: true,
      fn: () => void kernel.kseqStep(target, draft, options, candidates, uniforms),
    });
    Deno.bench({
      name: `reference kseqStep V=${vocab} k=${k}`,
      group,
      ...(slow ? { n: 8, warmup: 2 } : {}),
      fn: () => void kseqStepReference(target, draft, options, candidates, uniforms),
    });
    Deno.bench({
      name: `floor (max + Σexp, both rows) V=${vocab}`,
      group,
      fn: () => void kernel.floor(target, draft),
    });
  }
}
