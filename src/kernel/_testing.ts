// Test helpers for src/kernel (not exported from mod.ts).
import type { Random } from "../random.ts";

/**
 * A float32 row as the kernels see it: random weights (10 % zeros, the rest log-normal), normalised
 * in float64, times `scale`, rounded to float32 — so its sum is `scale` only up to float32 rounding.
 */
export function f32Row(rng: Random, n: number, scale: number): Float32Array {
  const v = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    v[i] = rng.next() < 0.1 ? 0 : Math.exp(2 * rng.normal());
    sum += v[i];
  }
  if (sum === 0) v[0] = sum = 1;
  return Float32Array.from(v, (x) => (x / sum) * scale);
}
