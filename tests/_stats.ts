/**
 * Goodness-of-fit statistics for the exactness tests, written from the textbook formulas and
 * independent of the code under test.
 *
 * @module
 */

/** Result of a goodness-of-fit test. */
export interface FitResult {
  /** Test statistic (G = 2 Σ O ln(O/E)). */
  statistic: number;
  /** Degrees of freedom after pooling. */
  df: number;
  /** P(χ²_df ≥ statistic); 0 when an impossible outcome was observed. */
  pValue: number;
  /** Number of cells after pooling. */
  cells: number;
  /** Outcomes observed where the expected probability is 0 (each one alone refutes the null). */
  impossible: number;
}

/**
 * G-test of observed counts against expected probabilities. Cells whose expected count is below
 * `minExpected` are pooled (in index order, smallest first) until every pooled cell reaches it, the
 * standard condition for the χ² approximation. Observations in cells of probability 0 are counted
 * in `impossible` and force pValue = 0.
 *
 * @param observed counts per outcome
 * @param expected probabilities per outcome (summing to 1)
 */
export function gTest(observed: ArrayLike<number>, expected: ArrayLike<number>, minExpected = 5): FitResult {
  if (observed.length !== expected.length) throw new RangeError("gTest: length mismatch");
  let n = 0;
  let impossible = 0;
  for (let i = 0; i < observed.length; i++) {
    n += observed[i];
    if (!(expected[i] > 0) && observed[i] > 0) impossible += observed[i];
  }
  // Sort cells by expected count and pool the small ones together.
  const order = Array.from({ length: observed.length }, (_, i) => i).filter((i) => expected[i] > 0);
  order.sort((a, b) => expected[a] - expected[b]);
  const cellsO: number[] = [];
  const cellsE: number[] = [];
  let poolO = 0;
  let poolE = 0;
  for (const i of order) {
    poolO += observed[i];
    poolE += expected[i] * n;
    if (poolE >= minExpected) {
      cellsO.push(poolO);
      cellsE.push(poolE);
      poolO = 0;
      poolE = 0;
    }
  }
  if (poolE > 0) {
    if (cellsE.length === 0) {
      cellsO.push(poolO);
      cellsE.push(poolE);
    } else {
      cellsO[cellsO.length - 1] += poolO;
      cellsE[cellsE.length - 1] += poolE;
    }
  }
  let g = 0;
  for (let c = 0; c < cellsO.length; c++) {
    if (cellsO[c] > 0) g += 2 * cellsO[c] * Math.log(cellsO[c] / cellsE[c]);
  }
  const df = Math.max(cellsO.length - 1, 1);
  const pValue = impossible > 0 ? 0 : chiSquareSurvival(g, df);
  return { statistic: g, df, pValue, cells: cellsO.length, impossible };
}

/** P(χ²_df ≥ x), the regularised upper incomplete gamma Q(df/2, x/2). */
export function chiSquareSurvival(x: number, df: number): number {
  if (x <= 0) return 1;
  return upperGammaQ(df / 2, x / 2);
}

/** ln Γ(x) by the Lanczos approximation (g = 7, n = 9), accurate to ~1e-15 for x > 0. */
export function logGamma(x: number): number {
  const c = [
    0.99999999999980993,
    676.5203681218851,
    -1259.1392167224028,
    771.32342877765313,
    -176.61502916214059,
    12.507343278686905,
    -0.13857109526572012,
    9.9843695780195716e-6,
    1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  x -= 1;
  let a = c[0];
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i] / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Regularised upper incomplete gamma Q(a, x): series below a + 1, Lentz continued fraction above. */
function upperGammaQ(a: number, x: number): number {
  const lnPrefix = -x + a * Math.log(x) - logGamma(a);
  if (x < a + 1) {
    let sum = 1 / a;
    let term = sum;
    for (let n = 1; n < 100000; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-16) break;
    }
    return Math.max(0, 1 - sum * Math.exp(lnPrefix));
  }
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 100000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(lnPrefix) * h;
}

/** Binomial z-score of `successes` out of `n` against probability `prob`. */
export function binomialZ(successes: number, n: number, prob: number): number {
  const sd = Math.sqrt(n * prob * (1 - prob));
  if (sd === 0) return successes === n * prob ? 0 : Infinity;
  return (successes - n * prob) / sd;
}
