/**
 * The cost model of `auto`: how long a target forward of `rows × tokens` and a draft forward of
 * `rows` rows take, from a short calibration of the real models (bounded in time, cached per model
 * key for the process) and refined online from the timings of real blocks, so steady state runs no
 * extra forward.
 *
 * @module
 */

import type { CausalModel } from "./model.ts";

/** Forward times measured at some shapes: `times[i]` ms for `rows[i] × tokens[i]`. */
export interface ForwardTimings {
  /** Rows of each measured forward. */
  rows: number[];
  /** Tokens per row of each measured forward. */
  tokens: number[];
  /** Time of each shape (the fastest repetition), ms. */
  ms: number[];
}

/**
 * Forward time as a function of (rows, tokens): piecewise linear in tokens per measured row count,
 * linear in rows between measured row counts (and beyond the last, extrapolated from the last two),
 * times two online corrections, both exponentially weighted means of measured / predicted starting
 * at 1: one shared by every shape (the machine got busier or quieter) and one per row count (a
 * higher rate: a row count may run rarely), replaced for a shape already observed by that shape's
 * own. Each observed ratio is clamped to [1/3, 3] so that one
 * stall cannot swing the model. Measured times are cleaned first, since a stall only ever adds
 * time: a shape never costs more than a larger one (more rows or tokens) nor more than running its
 * rows·tokens tokens one by one, t(r, T) ≤ r·T·t(1, 1).
 *
 * @example
 * ```ts
 * import { ForwardCost } from "./cost.ts";
 * const cost = new ForwardCost({ rows: [1, 1, 2, 2], tokens: [1, 5, 1, 5], ms: [10, 14, 12, 20] });
 * console.assert(cost.predict(1, 3) === 12 && cost.predict(2, 3) === 16);
 * cost.observe(1, 3, 24); // measured twice the prediction: row-1 predictions move towards it
 * console.assert(cost.predict(1, 3) > 12);
 * ```
 */
export class ForwardCost {
  readonly #curves = new Map<number, { tokens: number[]; ms: number[] }>();
  readonly #rows: number[];
  readonly #correction = new Map<number, number>();
  readonly #shapeCorrection = new Map<string, number>();
  #shared = 1;
  /** Weight of one new observation in the shared online correction. */
  readonly rate: number;

  /**
   * A cost surface fitted to measured forward timings.
   *
   * @param timings At least one shape; times > 0.
   * @param rate Weight of each online observation, in (0, 1].
   * @throws {RangeError} no shapes, ragged arrays, or non-positive times.
   */
  constructor(timings: ForwardTimings, rate = 0.1) {
    timings = cleanTimings(timings);
    const { rows, tokens, ms } = timings;
    if (rows.length === 0 || rows.length !== tokens.length || rows.length !== ms.length) {
      throw new RangeError(
        `Cannot build a cost model: expected equally long, non-empty rows/tokens/ms, got ${rows.length}/${tokens.length}/${ms.length}`,
      );
    }
    for (let i = 0; i < rows.length; i++) {
      if (!(ms[i] > 0) || !(rows[i] >= 1) || !(tokens[i] >= 1)) {
        throw new RangeError(
          `Cannot build a cost model: shape ${rows[i]}×${tokens[i]} has time ${
            ms[i]
          } ms (needs rows, tokens >= 1, ms > 0)`,
        );
      }
      let curve = this.#curves.get(rows[i]);
      if (!curve) this.#curves.set(rows[i], curve = { tokens: [], ms: [] });
      curve.tokens.push(tokens[i]);
      curve.ms.push(ms[i]);
    }
    for (const curve of this.#curves.values()) {
      const order = curve.tokens.map((_, i) => i).sort((a, b) => curve.tokens[a] - curve.tokens[b]);
      curve.tokens = order.map((i) => curve.tokens[i]);
      curve.ms = order.map((i) => curve.ms[i]);
    }
    this.#rows = [...this.#curves.keys()].sort((a, b) => a - b);
    this.rate = rate;
  }

  /** Predicted ms of one forward of `rows × tokens`. */
  predict(rows: number, tokens: number): number {
    const base = this.#base(rows, tokens);
    const own = this.#shapeCorrection.get(`${rows}×${tokens}`) ?? this.#correction.get(rows) ?? 1;
    return base * this.#shared * own;
  }

  /** Feeds one measured forward: moves the row count's correction towards measured / predicted. */
  observe(rows: number, tokens: number, ms: number): void {
    if (!(ms > 0) || !Number.isFinite(ms)) return;
    const ratio = Math.min(3, Math.max(1 / 3, ms / this.predict(rows, tokens)));
    this.#shared *= ratio ** this.rate;
    const own = this.#correction.get(rows) ?? 1;
    this.#correction.set(rows, own * ratio ** Math.min(1, 3 * this.rate));
    // The exact shape, once seen, is corrected on its own (the calibrated curve may be off there).
    const key = `${rows}×${tokens}`;
    const shape = this.#shapeCorrection.get(key) ?? own;
    this.#shapeCorrection.set(key, shape * ratio ** Math.min(1, 3 * this.rate));
  }

  #base(rows: number, tokens: number): number {
    const known = this.#rows;
    if (this.#curves.has(rows) || known.length === 1) {
      return this.#along(known.length === 1 ? known[0] : rows, tokens);
    }
    let lo = known[0], hi = known[known.length - 1];
    if (rows < lo) hi = known[1];
    else if (rows > hi) lo = known[known.length - 2];
    else {
      for (const r of known) {
        if (r < rows) lo = r;
        if (r > rows) {
          hi = r;
          break;
        }
      }
    }
    const a = this.#along(lo, tokens), b = this.#along(hi, tokens);
    return Math.max(1e-6, a + ((b - a) * (rows - lo)) / (hi - lo));
  }

  #along(rows: number, tokens: number): number {
    const { tokens: ts, ms } = this.#curves.get(rows)!;
    if (ts.length === 1) return ms[0];
    let i = 1;
    while (i < ts.length - 1 && ts[i] < tokens) i++;
    const t0 = ts[i - 1], t1 = ts[i];
    return Math.max(1e-6, ms[i - 1] + ((ms[i] - ms[i - 1]) * (tokens - t0)) / (t1 - t0));
  }
}

/**
 * Removes stalls from measured timings: each shape's time becomes the least time of the shapes at
 * least as large (rows and tokens both ≥), and at most rows·tokens times the 1 × 1 time (when
 * measured).
 */
function cleanTimings(timings: ForwardTimings): ForwardTimings {
  const { rows, tokens } = timings;
  let one = Infinity;
  for (let i = 0; i < rows.length; i++) if (rows[i] === 1 && tokens[i] === 1) one = timings.ms[i];
  const ms = timings.ms.map((_, i) => {
    let t = timings.ms[i];
    for (let j = 0; j < rows.length; j++) {
      if (rows[j] >= rows[i] && tokens[j] >= tokens[i]) t = Math.min(t, timings.ms[j]);
    }
    return Math.min(t, rows[i] * tokens[i] * one);
  });
  return { rows: rows.slice(), tokens: tokens.slice(), ms };
}

/** Options of {@linkcode measureForwards}. */
export interface MeasureOptions {
  /** Row counts to measure. */
  rows: readonly number[];
  /** Tokens per row to measure. */
  tokens: readonly number[];
  /**
   * Tokens in the cache before each measured forward (a short prompt).
   * @default {32}
   */
  past?: number;
  /**
   * Repetitions per shape at least (the fastest is kept: stalls only ever add time); more rounds,
   * up to 8, run while a whole round still fits in the budget.
   * @default {2}
   */
  repeats?: number;
  /**
   * Time budget, ms: shapes not reached by then are left out (at least one is measured).
   * @default {2000}
   */
  budgetMs?: number;
}

/**
 * Times forwards of a model at the given shapes: prefills `past` tokens once, then per shape forks
 * to `rows`, appends `rows × tokens`, and rolls back; finally resets the model. Bounded by
 * `budgetMs`. Token ids are 1, 2, … (mod the vocabulary): the content does not change the time.
 *
 * @returns The fastest time per measured shape.
 * @example
 * ```ts
 * import { measureForwards } from "./cost.ts";
 * import { MarkovModel, randomMarkovTable } from "./markov.ts";
 * const model = new MarkovModel({ table: randomMarkovTable(4, 1, 1), vocabSize: 4 });
 * const t = await measureForwards(model, { rows: [1, 2], tokens: [1, 3], budgetMs: 100 });
 * console.assert(t.rows.length >= 1 && model.length === 0);
 * ```
 */
export async function measureForwards(model: CausalModel, options: MeasureOptions): Promise<ForwardTimings> {
  const { rows, tokens, repeats = 2, budgetMs = 2000 } = options;
  // Cheap models get more rounds (up to 8) within the budget: their forwards are short and noisy.
  const maxRounds = Math.max(repeats, 8);
  const maxTokens = Math.max(...tokens);
  const past = Math.max(1, Math.min(options.past ?? 32, model.maxLength - maxTokens));
  const id = (i: number) => (i + 1) % model.vocabSize;
  const start = performance.now();
  const samples = new Map<string, number[]>();
  model.reset();
  try {
    await model.append([Array.from({ length: past }, (_, i) => id(i))], 1);
    await model.append([[id(past)]], 1); // warm-up
    model.select(0, past);
    let roundMs = 0;
    outer:
    for (let rep = 0; rep < maxRounds; rep++) {
      const roundStart = performance.now();
      if (rep >= repeats && roundStart - start + roundMs > budgetMs) break;
      for (const r of rows) {
        for (const t of tokens) {
          if (samples.size > 0 && performance.now() - start > budgetMs) break outer;
          if (past + t > model.maxLength) continue;
          if (r > 1) model.fork(r);
          const input = Array.from(
            { length: r },
            (_, row) => Array.from({ length: t }, (_, j) => id(row + j + 2)),
          );
          const t0 = performance.now();
          await model.append(input, 1);
          const ms = performance.now() - t0;
          model.select(0, past);
          const key = `${r}×${t}`;
          let list = samples.get(key);
          if (!list) samples.set(key, list = []);
          list.push(ms);
        }
      }
      roundMs = performance.now() - roundStart;
    }
  } finally {
    model.reset();
  }
  const out: ForwardTimings = { rows: [], tokens: [], ms: [] };
  for (const [key, list] of samples) {
    const [r, t] = key.split("×").map(Number);
    out.rows.push(r);
    out.tokens.push(t);
    out.ms.push(Math.max(Math.min(...list), 1e-3));
  }
  return out;
}

/** Target and draft cost of one block, as `auto` plans it. */
export interface BlockCostModel {
  /** Target forward of `rows × tokens`. */
  readonly target: ForwardCost;
  /** Draft forward of `rows × tokens`. */
  readonly draft: ForwardCost;
}

const calibrations = new Map<string, Promise<BlockCostModel>>();

/**
 * Calibrates the cost of a target and draft pair at the shapes `auto` plans with (target: rows 1, 2,
 * 4 × tokens 1, 2, 4, 7, and 1 × 13 when it scores trees; draft: rows 1, 2, 4 × 1 token and 1 × 3),
 * within `budgetMs` in all, and
 * caches the result for the process under `key` (e.g. model files + backend + threads). Resets both
 * models.
 *
 * @example
 * ```ts
 * import { calibrateBlockCost } from "./cost.ts";
 * import { MarkovModel, randomMarkovTable } from "./markov.ts";
 * const m = () => new MarkovModel({ table: randomMarkovTable(4, 1, 1), vocabSize: 4 });
 * const cost = await calibrateBlockCost(m(), m(), { budgetMs: 100 });
 * console.assert(cost.target.predict(1, 1) > 0);
 * ```
 */
export function calibrateBlockCost(
  target: CausalModel,
  draft: CausalModel | undefined,
  options: { key?: string; budgetMs?: number } = {},
): Promise<BlockCostModel> {
  const { key, budgetMs = 2000 } = options;
  const cached = key === undefined ? undefined : calibrations.get(key);
  if (cached) return cached;
  const run = (async () => {
    const targetTimings = await measureForwards(target, {
      rows: [1, 2, 4],
      tokens: [1, 2, 4, 7],
      budgetMs: budgetMs * 0.7,
    });
    if (target.supportsTree) {
      // A merged tree of k ≥ 2 drafts is one row of up to 1 + k·L tokens.
      const wide = await measureForwards(target, { rows: [1], tokens: [13], budgetMs: budgetMs * 0.1 });
      targetTimings.rows.push(...wide.rows);
      targetTimings.tokens.push(...wide.tokens);
      targetTimings.ms.push(...wide.ms);
    }
    const draftTimings = draft
      ? await measureForwards(draft, { rows: [1, 2, 4], tokens: [1, 3], budgetMs: budgetMs * 0.2 })
      : { rows: [1], tokens: [1], ms: [1e-3] };
    return { target: new ForwardCost(targetTimings), draft: new ForwardCost(draftTimings) };
  })();
  if (key !== undefined) {
    calibrations.set(key, run);
    run.catch(() => calibrations.delete(key));
  }
  return run;
}
