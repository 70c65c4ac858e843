/**
 * Toy causal models: Markov chains of order 1 or 2 over a tiny vocabulary, given a transition table
 * of logits. They implement {@linkcode CausalModel} exactly (every row keeps its whole history, so
 * fork, select and crop are exact), which makes them the test bed for sequence-level exactness.
 *
 * @module
 */

import { Random } from "../random.ts";
import {
  type CausalModel,
  checkAppend,
  checkAppendTree,
  checkFork,
  checkKeepTreePath,
  checkSelect,
} from "./model.ts";

/** Options of {@linkcode MarkovModel}. */
export interface MarkovModelOptions {
  /**
   * Transition logits `[vocab^order, vocab]`: row `prev` (order 1) or `prev2 · vocab + prev1`
   * (order 2) holds the next-token logits; -Infinity marks an impossible transition.
   */
  table: Float32Array;
  /** Vocabulary size V. */
  vocabSize: number;
  /**
   * How many previous tokens the next token depends on: 1 or 2.
   * @default {1}
   */
  order?: 1 | 2;
  /**
   * Context limit in tokens.
   * @default {1024}
   */
  maxLength?: number;
  /**
   * Whether the model offers tree scoring ({@linkcode MarkovModel.appendTree} /
   * {@linkcode MarkovModel.keepTreePath}; `supportsTree`). With false those throw a RangeError, as
   * a model without tree support would not have them (a decoder then scores rows).
   * @default {true}
   */
  tree?: boolean;
  /**
   * Return toy target features ({@linkcode MarkovModel.lastFeatures}, `featureSize` 3): position
   * j of a row holding x₀..x_j gets `[j, x_j, h_j]`, h_j = (31·h_{j−1} + x_j + 1) mod 65521 (h₋₁ = 0),
   * a deterministic function of the whole context, for testing feature drafters.
   * @default {false}
   */
  features?: boolean;
}

/** The toy feature hash step: h_j = (31·h_{j−1} + x_j + 1) mod 65521. */
function featureHash(previous: number, token: number): number {
  return (31 * previous + token + 1) % 65521;
}

/**
 * A Markov chain as a {@linkcode CausalModel}: the logits after a token depend only on the last
 * `order` tokens of its row.
 *
 * @example Next-token logits are the table row of the previous token
 * ```ts
 * import { MarkovModel } from "./markov.ts";
 * import assert from "node:assert/strict";
 * const table = new Float32Array([0, 1, 2, 3]); // V = 2, order 1
 * const model = new MarkovModel({ table, vocabSize: 2 });
 * assert.deepEqual([...await model.append([[0, 1]], 2)], [0, 1, 2, 3]);
 * assert.equal(model.calls, 1);
 * ```
 */
export class MarkovModel implements CausalModel {
  /** Vocabulary size V. */
  readonly vocabSize: number;
  /** Context limit in tokens. */
  readonly maxLength: number;
  /** Tokens the next one depends on (1 or 2). */
  readonly order: 1 | 2;
  /** Transition logits `[vocab^order, vocab]`. */
  readonly table: Float32Array;
  /** Whether {@linkcode MarkovModel.appendTree} / {@linkcode MarkovModel.keepTreePath} work (option `tree`). */
  readonly supportsTree: boolean;
  /**
   * Number of {@linkcode MarkovModel.append} and {@linkcode MarkovModel.appendTree} calls since
   * construction (model forwards).
   */
  calls = 0;
  /** 3 with the `features` option (`[j, x_j, h_j]` per position), else undefined. */
  readonly featureSize: number | undefined;
  #features: Float32Array | undefined;
  #rows: number[][] = [[]];
  /** The tree appended and not yet ended by keepTreePath. */
  #tree: { tokens: number[]; parents: number[] } | undefined;

  /**
   * Builds a chain model from its transition logits.
   *
   * @throws {RangeError} order not 1 or 2, vocabSize not an integer ≥ 1, table of the wrong size or
   *   with a row of only -Infinity / a NaN or +Infinity entry, maxLength not an integer ≥ 1.
   */
  constructor(options: MarkovModelOptions) {
    const { table, vocabSize, order = 1, maxLength = 1024, tree = true, features = false } = options;
    if (order !== 1 && order !== 2) {
      throw new RangeError(`Cannot build a Markov model: order must be 1 or 2, got ${order}`);
    }
    if (!Number.isInteger(vocabSize) || vocabSize < 1) {
      throw new RangeError(
        `Cannot build a Markov model: vocabSize must be an integer >= 1, got ${vocabSize}`,
      );
    }
    if (!(table instanceof Float32Array)) {
      throw new TypeError(`Cannot build a Markov model: table must be a Float32Array, got ${typeof table}`);
    }
    const size = vocabSize ** (order + 1);
    if (table.length !== size) {
      throw new RangeError(
        `Cannot build a Markov model: table must have vocab^(order+1) = ${size} entries, got ${table.length}`,
      );
    }
    for (let row = 0; row < size / vocabSize; row++) {
      let finite = 0;
      for (let x = 0; x < vocabSize; x++) {
        const v = table[row * vocabSize + x];
        if (v !== v || v === Infinity) {
          throw new RangeError(`Cannot build a Markov model: table row ${row} entry ${x} is ${v}`);
        }
        if (v !== -Infinity) finite++;
      }
      if (finite === 0) {
        throw new RangeError(`Cannot build a Markov model: table row ${row} is all -Infinity`);
      }
    }
    if (!Number.isInteger(maxLength) || maxLength < 1) {
      throw new RangeError(
        `Cannot build a Markov model: maxLength must be an integer >= 1, got ${maxLength}`,
      );
    }
    this.vocabSize = vocabSize;
    this.order = order;
    this.table = table;
    this.maxLength = maxLength;
    this.supportsTree = tree === true;
    this.featureSize = features === true ? 3 : undefined;
  }

  /**
   * The toy features of every position the last append (`[rows, T, 3]`) or appendTree
   * (`[nodes, 3]`) fed: `[j, x_j, h_j]` (see the `features` option).
   *
   * @throws {RangeError} built without `features`, or nothing appended since the last reset.
   */
  lastFeatures(): Float32Array {
    if (this.featureSize === undefined) {
      throw new RangeError("Cannot read target features: the Markov model was built without features");
    }
    if (!this.#features) {
      throw new RangeError("Cannot read target features: nothing was appended since the last reset");
    }
    return this.#features;
  }

  /** The toy feature hash of a row's first `length` tokens (h of the last of them; 0 for none). */
  #hash(row: readonly number[], length: number): number {
    let h = 0;
    for (let i = 0; i < length; i++) h = featureHash(h, row[i]);
    return h;
  }

  /** Rows (branches) currently held. */
  get rows(): number {
    return this.#rows.length;
  }

  /** Tokens held per row. */
  get length(): number {
    return this.#rows[0].length;
  }

  /** The tokens of row `row` (a copy). */
  tokens(row = 0): number[] {
    return this.#rows[row].slice();
  }

  /** Drops everything (a pending tree too): one empty row. */
  reset(): void {
    this.#rows = [[]];
    this.#tree = undefined;
    this.#features = undefined;
  }

  /**
   * Copies row 0 into `rows` rows.
   *
   * @throws {RangeError} more than one row held, `rows` not an integer ≥ 1, or a tree pending.
   */
  fork(rows: number): void {
    this.#throwIfTree("fork the model");
    checkFork(this.#rows.length, rows);
    const base = this.#rows[0];
    this.#rows = Array.from({ length: rows }, (_, r) => (r === 0 ? base : base.slice()));
  }

  /**
   * Appends `tokens[r]` to row r and returns logits `[rows, keep, vocab]` after the last `keep`
   * appended tokens.
   *
   * @throws {RangeError} bad shapes or ids, keep outside [1, T], the context limit exceeded, a
   *   row holding fewer than `order` tokens where logits are needed, or a tree pending.
   */
  append(tokens: ArrayLike<number>[], keep: number): Promise<Float32Array> {
    try {
      this.#throwIfTree("append tokens");
      const t = checkAppend(tokens, keep, this);
      const v = this.vocabSize;
      const rows = this.#rows;
      const start = rows[0].length + t - keep; // history length before the first kept position's token
      if (start + 1 < this.order) {
        throw new RangeError(
          `Cannot compute Markov logits: an order-${this.order} model needs ${this.order} tokens of context, ` +
            `got ${start + 1}`,
        );
      }
      const out = new Float32Array(rows.length * keep * v);
      for (let r = 0; r < rows.length; r++) {
        const row = rows[r];
        for (let i = 0; i < t; i++) row.push(tokens[r][i]);
        for (let j = 0; j < keep; j++) {
          const last = start + j; // index of the token the logits follow
          const index = this.order === 1 ? row[last] : row[last - 1] * v + row[last];
          out.set(this.table.subarray(index * v, index * v + v), (r * keep + j) * v);
        }
      }
      if (this.featureSize !== undefined) {
        const features = new Float32Array(rows.length * t * 3);
        for (let r = 0; r < rows.length; r++) {
          const row = rows[r], first = row.length - t;
          let h = this.#hash(row, first);
          for (let i = 0; i < t; i++) {
            h = featureHash(h, row[first + i]);
            features.set([first + i, row[first + i], h], (r * t + i) * 3);
          }
        }
        this.#features = features;
      }
      this.calls++;
      return Promise.resolve(out);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Keeps only row `row`, cut to `length` tokens.
   *
   * @throws {RangeError} row or length out of range, or a tree pending.
   */
  select(row: number, length: number): void {
    this.#throwIfTree("select a row");
    checkSelect(row, length, this);
    const kept = this.#rows[row];
    kept.length = length;
    this.#rows = [kept];
  }

  /**
   * Scores a token tree in one call (see {@linkcode CausalModel.appendTree}): node i holds
   * `tokens[i]` after its ancestors (`parents[i]` = −1: right after the held tokens); returns
   * logits `[nodes, vocab]`, row i the next-token logits after node i. The tree stays pending until
   * {@linkcode MarkovModel.keepTreePath}.
   *
   * @example Pending token 3, then drafts [1, 2] and [1, 0] sharing their first token
   * ```ts
   * import { MarkovModel, randomMarkovTable } from "./markov.ts";
   * import assert from "node:assert/strict";
   * const model = new MarkovModel({ table: randomMarkovTable(4, 1, 5), vocabSize: 4 });
   * await model.append([[0]], 1);
   * const logits = await model.appendTree([3, 1, 2, 0], [-1, 0, 1, 1]); // [4, vocab]
   * model.keepTreePath([0, 1, 3]); // accepted: 3 1 0
   * assert.deepEqual(model.tokens(), [0, 3, 1, 0]);
   * assert.equal(logits.length, 4 * 4);
   * ```
   * @throws {RangeError} tree scoring off (`tree: false`), a tree pending, more than one row, bad
   *   tokens or parents, or the context limit exceeded (see {@linkcode checkAppendTree}). A node
   *   with fewer than `order` tokens of context gets a NaN row (an order-2 chain has no
   *   distribution there).
   */
  appendTree(tokens: ArrayLike<number>, parents: ArrayLike<number>): Promise<Float32Array> {
    try {
      if (!this.supportsTree) {
        throw new RangeError("Cannot append a tree: tree scoring is off for this model (tree: false)");
      }
      this.#throwIfTree("append a tree");
      checkAppendTree(tokens, parents, this);
      const v = this.vocabSize, row = this.#rows[0], n = tokens.length;
      const out = new Float32Array(n * v);
      for (let i = 0; i < n; i++) {
        let index = tokens[i];
        if (this.order === 2) {
          const p = parents[i];
          const prev = p === -1 ? row[row.length - 1] : tokens[p];
          if (prev === undefined) {
            // No distribution after a single token for an order-2 chain (as `append`, which only
            // returns the kept positions): such a node's row is NaN, and nothing may read it.
            out.fill(NaN, i * v, i * v + v);
            continue;
          }
          index = prev * v + index;
        }
        out.set(this.table.subarray(index * v, index * v + v), i * v);
      }
      if (this.featureSize !== undefined) {
        const features = new Float32Array(n * 3),
          hashes = new Float64Array(n),
          base = this.#hash(row, row.length);
        for (let i = 0; i < n; i++) {
          const p = parents[i];
          hashes[i] = featureHash(p === -1 ? base : hashes[p], tokens[i]);
          const depth = p === -1 ? 0 : features[p * 3] - row.length + 1;
          features.set([row.length + depth, tokens[i], hashes[i]], i * 3);
        }
        this.#features = features;
      }
      this.#tree = { tokens: Array.from(tokens), parents: Array.from(parents) };
      this.calls++;
      return Promise.resolve(out);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Ends the pending tree, keeping `nodes` (a root-to-node chain of it, possibly empty) after the
   * held tokens; the other nodes are dropped (see {@linkcode CausalModel.keepTreePath}).
   *
   * @throws {RangeError} no tree pending, or `nodes` not a root-to-node chain of it.
   */
  keepTreePath(nodes: ArrayLike<number>): void {
    const tree = this.#tree;
    if (!tree) {
      throw new RangeError("Cannot keep a tree path: no tree is pending (call appendTree first)");
    }
    checkKeepTreePath(nodes, tree.parents);
    const row = this.#rows[0];
    for (let j = 0; j < nodes.length; j++) row.push(tree.tokens[nodes[j]]);
    this.#tree = undefined;
  }

  #throwIfTree(action: string): void {
    if (this.#tree) {
      throw new RangeError(
        `Cannot ${action}: a tree is pending (appendTree was called); end it with keepTreePath or reset first`,
      );
    }
  }
}

/** Options of {@linkcode randomMarkovTable}. */
export interface RandomTableOptions {
  /**
   * Standard deviation of the Gaussian logits.
   * @default {1.5}
   */
  scale?: number;
  /**
   * Probability that a transition is made impossible (-Infinity); every row keeps ≥ 1 token.
   * @default {0}
   */
  maskProbability?: number;
}

/**
 * A random transition table `[vocab^order, vocab]` of Gaussian logits, reproducible from `seed`.
 *
 * @param vocabSize V.
 * @param order 1 or 2.
 * @param seed Seed of the {@linkcode Random} used.
 * @returns Logits `[vocab^order, vocab]`.
 * @example
 * ```ts
 * import { randomMarkovTable } from "./markov.ts";
 * import assert from "node:assert/strict";
 * const table = randomMarkovTable(3, 2, 1, { maskProbability: 0.3 });
 * assert.equal(table.length, 27);
 * assert.deepEqual(table, randomMarkovTable(3, 2, 1, { maskProbability: 0.3 }));
 * ```
 */
export function randomMarkovTable(
  vocabSize: number,
  order: 1 | 2,
  seed: number,
  options: RandomTableOptions = {},
): Float32Array {
  const { scale = 1.5, maskProbability = 0 } = options;
  const random = new Random(seed);
  const rows = vocabSize ** order;
  const table = new Float32Array(rows * vocabSize);
  for (let i = 0; i < table.length; i++) table[i] = scale * random.normal();
  maskRows(table, vocabSize, maskProbability, random);
  return table;
}

/**
 * A draft table "near" a target one: target logits plus Gaussian noise (and optional extra
 * -Infinity masks), reproducible from `seed`. Tokens masked in the target stay masked unless
 * `unmask` is set, in which case they get a finite logit (the draft then proposes tokens the
 * target never emits).
 *
 * @param target Target logits `[rows, vocab]`.
 * @param vocabSize V.
 * @param seed Seed of the noise.
 * @param options noise (standard deviation, default 0.5), maskProbability (default 0), unmask
 *   (default false).
 * @returns Draft logits, same shape.
 * @example
 * ```ts
 * import { nearMarkovTable, randomMarkovTable } from "./markov.ts";
 * import assert from "node:assert/strict";
 * const target = randomMarkovTable(4, 1, 3);
 * assert.equal(nearMarkovTable(target, 4, 9).length, target.length);
 * ```
 */
export function nearMarkovTable(
  target: Float32Array,
  vocabSize: number,
  seed: number,
  options: { noise?: number; maskProbability?: number; unmask?: boolean } = {},
): Float32Array {
  const { noise = 0.5, maskProbability = 0, unmask = false } = options;
  const random = new Random(seed);
  const out = new Float32Array(target.length);
  for (let i = 0; i < out.length; i++) {
    const base = target[i] === -Infinity ? (unmask ? 0 : -Infinity) : target[i];
    out[i] = base + noise * random.normal();
  }
  maskRows(out, vocabSize, maskProbability, random);
  return out;
}

/** Sets entries to -Infinity with probability `probability`, keeping ≥ 1 finite entry per row. */
function maskRows(table: Float32Array, vocabSize: number, probability: number, random: Random): void {
  if (!(probability > 0)) return;
  for (let row = 0; row < table.length / vocabSize; row++) {
    const base = row * vocabSize;
    for (let x = 0; x < vocabSize; x++) if (random.next() < probability) table[base + x] = -Infinity;
    let finite = false;
    for (let x = 0; x < vocabSize; x++) finite ||= table[base + x] !== -Infinity;
    if (!finite) table[base + Math.floor(random.next() * vocabSize)] = 0;
  }
}
