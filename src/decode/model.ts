/**
 * The interface a causal language model offers so the block decoder can drive it, and the argument
 * checks every implementation shares.
 *
 * The model holds one or more *rows* (branches) of tokens, in a real model a KV cache per row. The
 * decoder prefills once, expands the cache to k rows without recompute ({@linkcode CausalModel.fork}),
 * scores k × (L + 1) positions in one forward ({@linkcode CausalModel.append}), then keeps the accepted
 * row cut to the accepted length ({@linkcode CausalModel.select}: rollback). A model that
 * {@linkcode CausalModel.supportsTree} can instead score the drafts' merged token tree as one row
 * ({@linkcode CausalModel.appendTree}, tree attention) and then keep the accepted path
 * ({@linkcode CausalModel.keepTreePath}).
 *
 * @module
 */

/**
 * A causal LM with a per-row token history (a KV cache in a real model).
 *
 * @example A model that holds rows of tokens
 * ```ts
 * import type { CausalModel } from "./model.ts";
 * import { MarkovModel, randomMarkovTable } from "./markov.ts";
 * const model: CausalModel = new MarkovModel({ table: randomMarkovTable(3, 1, 7), vocabSize: 3 });
 * await model.append([[0, 1]], 1);
 * model.fork(2);
 * console.assert(model.rows === 2 && model.length === 2);
 * ```
 */
export interface CausalModel {
  /** Number of token ids; logits rows have this many entries. */
  readonly vocabSize: number;
  /** Context limit in tokens. */
  readonly maxLength: number;
  /** Rows (branches) currently held; all rows have the same `length`. */
  readonly rows: number;
  /** Tokens held per row (the KV-cache length). */
  readonly length: number;
  /**
   * Forwards run so far, when the model counts them (OnnxCausalLM and MarkovModel do). The decoders
   * report the change of this counter as target/draft calls, so a call that runs more than one
   * forward (an ONNX model's lazy fork runs the shared prompt once, then the rows) is counted
   * truthfully; without it each `append` counts as one.
   */
  readonly calls?: number;
  /** Time inside forwards so far, ms, when the model counts it (OnnxCausalLM does); for profiles. */
  readonly forwardMs?: number;
  /**
   * Time keeping the KV cache so far (fork copies, rollback crops, tree-path gathers), ms, when the
   * model counts it (OnnxCausalLM does); for profiles.
   */
  readonly kvMs?: number;
  /** Drops everything: one empty row. */
  reset(): void;
  /** Copies row 0 into `rows` rows (KV expand, no recompute). Requires exactly one row. */
  fork(rows: number): void;
  /**
   * Appends tokens[r] (all the same length T ≥ 1) to row r, for every row; returns logits
   * Float32Array [rows, keep, vocab]: entry j of row r is the next-token logits after appended
   * token T − keep + j. One call = one model forward ("one target call").
   */
  append(tokens: ArrayLike<number>[], keep: number): Promise<Float32Array>;
  /** Keeps only row `row`, cut to its first `length` tokens (rollback); other rows are dropped. */
  select(row: number, length: number): void;
  /**
   * Whether {@linkcode CausalModel.appendTree} / {@linkcode CausalModel.keepTreePath} work on this
   * model (an ONNX model: when its graph takes a 4D attention mask). Absent or false: score drafts
   * as rows (fork / append / select).
   */
  readonly supportsTree?: boolean;
  /**
   * Scores a token tree in one forward (tree attention). Requires one row and no pending tree.
   * Node i holds `tokens[i]`; `parents[i]` is −1 (a child of the last held token) or an index
   * j < i. Node i sits at position `length + depth(i)` (a −1 child has depth 0) and sees every
   * held token, its ancestors and itself. Returns logits `[nodes, vocab]`: row i is the next-token
   * logits after node i. One call = one forward (counted in `calls`). The tree stays *pending*
   * (`length` unchanged) until {@linkcode CausalModel.keepTreePath}; append, fork and select throw a
   * RangeError meanwhile (reset drops it).
   *
   * @throws {RangeError} see {@linkcode checkAppendTree}; tree scoring unsupported; a tree pending.
   */
  appendTree?(tokens: ArrayLike<number>, parents: ArrayLike<number>): Promise<Float32Array>;
  /**
   * Ends the pending tree: keeps the held tokens plus `nodes`, a root-to-node chain of that tree
   * (`parents[nodes[0]] = −1`, `parents[nodes[j]] = nodes[j − 1]`; possibly empty), in that order
   * (a real model gathers their KV entries); `length` grows by `nodes.length`; the other nodes are
   * dropped.
   *
   * @throws {RangeError} no tree pending, or `nodes` not such a chain (see {@linkcode checkKeepTreePath}).
   */
  keepTreePath?(nodes: ArrayLike<number>): void;
  /**
   * Floats per position of the features {@linkcode CausalModel.lastFeatures} returns (e.g. the
   * concatenated hidden states of a few layers, what a feature drafter such as EAGLE reads).
   * Absent: the model returns no features.
   */
  readonly featureSize?: number;
  /**
   * The features of every position the last `append` or `appendTree` fed (all T appended positions,
   * whatever `keep`): Float32Array `[rows, T, featureSize]` after `append`, `[nodes, featureSize]`
   * after `appendTree`. The feature of a position is a function of its row's tokens up to and
   * including that position's token (as its logits are). Positions an ONNX model's lazy fork ran
   * once at batch 1 are repeated in every row.
   *
   * @throws {RangeError} the model returns no features, or nothing was appended since the last
   *   reset.
   */
  lastFeatures?(): Float32Array;
}

/**
 * Checks the argument of {@linkcode CausalModel.fork}.
 *
 * @param currentRows Rows held now (must be 1).
 * @param rows Rows wanted: an integer ≥ 1.
 * @throws {RangeError} more than one row held, or `rows` not an integer ≥ 1.
 * @example
 * ```ts
 * import { checkFork } from "./model.ts";
 * import assert from "node:assert/strict";
 * checkFork(1, 4);
 * assert.throws(() => checkFork(2, 4), RangeError);
 * ```
 */
export function checkFork(currentRows: number, rows: number): void {
  if (currentRows !== 1) {
    throw new RangeError(`Cannot fork the model: it must hold exactly 1 row, got ${currentRows}`);
  }
  if (!Number.isInteger(rows) || rows < 1) {
    throw new RangeError(`Cannot fork the model: rows must be an integer >= 1, got ${rows}`);
  }
}

/**
 * Checks the arguments of {@linkcode CausalModel.append} and returns T, the tokens appended per row.
 *
 * @param tokens One token list per row.
 * @param keep How many trailing positions to return logits for, in [1, T].
 * @param model The model's current shape: rows, length, vocabSize, maxLength.
 * @returns T, the common row length.
 * @throws {RangeError} wrong row count, ragged or empty rows, token ids outside [0, vocab), keep
 *   outside [1, T], or length + T beyond the context limit.
 * @example
 * ```ts
 * import { checkAppend } from "./model.ts";
 * import assert from "node:assert/strict";
 * const shape = { rows: 2, length: 3, vocabSize: 4, maxLength: 8 };
 * assert.equal(checkAppend([[1, 2], [3, 0]], 2, shape), 2);
 * assert.throws(() => checkAppend([[1, 2], [3, 0]], 1, { ...shape, maxLength: 4 }), /context limit/);
 * ```
 */
export function checkAppend(
  tokens: ArrayLike<number>[],
  keep: number,
  model: Pick<CausalModel, "rows" | "length" | "vocabSize" | "maxLength">,
): number {
  if (!Array.isArray(tokens) || tokens.length !== model.rows) {
    const got = Array.isArray(tokens) ? tokens.length : typeof tokens;
    throw new RangeError(`Cannot append tokens: expected one token list per row (${model.rows}), got ${got}`);
  }
  const t = tokens[0].length;
  if (!(t >= 1)) throw new RangeError(`Cannot append tokens: each row needs at least 1 token, got ${t}`);
  for (let r = 0; r < tokens.length; r++) {
    const row = tokens[r];
    if (row.length !== t) {
      throw new RangeError(
        `Cannot append tokens: rows must all have ${t} tokens, row ${r} has ${row.length}`,
      );
    }
    for (let i = 0; i < t; i++) {
      const x = row[i];
      if (!Number.isInteger(x) || x < 0 || x >= model.vocabSize) {
        throw new RangeError(
          `Cannot append tokens: token ${i} of row ${r} is ${x}, outside the vocabulary [0, ${model.vocabSize})`,
        );
      }
    }
  }
  if (!Number.isInteger(keep) || keep < 1 || keep > t) {
    throw new RangeError(`Cannot append tokens: keep must be an integer in [1, ${t}], got ${keep}`);
  }
  if (model.length + t > model.maxLength) {
    throw new RangeError(
      `Cannot append tokens: ${model.length} held + ${t} new exceeds the context limit of ${model.maxLength} tokens`,
    );
  }
  return t;
}

/**
 * Checks the arguments of {@linkcode CausalModel.select}.
 *
 * @throws {RangeError} `row` not in [0, rows) or `length` not an integer in [0, held length].
 * @example
 * ```ts
 * import { checkSelect } from "./model.ts";
 * import assert from "node:assert/strict";
 * checkSelect(1, 2, { rows: 2, length: 5 });
 * assert.throws(() => checkSelect(2, 2, { rows: 2, length: 5 }), RangeError);
 * ```
 */
export function checkSelect(row: number, length: number, model: Pick<CausalModel, "rows" | "length">): void {
  if (!Number.isInteger(row) || row < 0 || row >= model.rows) {
    throw new RangeError(`Cannot select a row: row must be an integer in [0, ${model.rows}), got ${row}`);
  }
  if (!Number.isInteger(length) || length < 0 || length > model.length) {
    throw new RangeError(
      `Cannot select a row: length must be an integer in [0, ${model.length}], got ${length}`,
    );
  }
}

/**
 * Checks the arguments of {@linkcode CausalModel.appendTree} and returns each node's depth.
 *
 * @param tokens Token id of each node.
 * @param parents Parent of each node: −1 (a child of the last held token) or an index j < i.
 * @param model The model's current shape: rows, length, vocabSize, maxLength.
 * @returns Depth of each node (0 for a child of −1), an Int32Array of `tokens.length`.
 * @throws {RangeError} more than one row held, no nodes, `parents` of another length, a token id
 *   outside [0, vocab), a parent that is not −1 or an earlier node, or the deepest node's position
 *   beyond the context limit (length + max depth + 1 > maxLength).
 * @example A pending token, then two drafts sharing their first token
 * ```ts
 * import { checkAppendTree } from "./model.ts";
 * import assert from "node:assert/strict";
 * const shape = { rows: 1, length: 3, vocabSize: 8, maxLength: 16 };
 * //             p  a  b  c  d
 * const depths = checkAppendTree([5, 1, 2, 3, 4], [-1, 0, 1, 2, 1], shape);
 * assert.deepEqual([...depths], [0, 1, 2, 3, 2]);
 * assert.throws(() => checkAppendTree([5, 1], [-1, 1], shape), /parent/);
 * ```
 */
export function checkAppendTree(
  tokens: ArrayLike<number>,
  parents: ArrayLike<number>,
  model: Pick<CausalModel, "rows" | "length" | "vocabSize" | "maxLength">,
): Int32Array {
  if (model.rows !== 1) {
    throw new RangeError(`Cannot append a tree: the model must hold exactly 1 row, got ${model.rows}`);
  }
  const n = tokens?.length;
  if (!(n >= 1)) throw new RangeError(`Cannot append a tree: it needs at least 1 node, got ${n}`);
  if (parents?.length !== n) {
    throw new RangeError(
      `Cannot append a tree: parents must have one entry per node (${n}), got ${parents?.length}`,
    );
  }
  const depths = new Int32Array(n);
  let deepest = 0;
  for (let i = 0; i < n; i++) {
    const x = tokens[i];
    if (!Number.isInteger(x) || x < 0 || x >= model.vocabSize) {
      throw new RangeError(
        `Cannot append a tree: token of node ${i} is ${x}, outside the vocabulary [0, ${model.vocabSize})`,
      );
    }
    const p = parents[i];
    if (!Number.isInteger(p) || p < -1 || p >= i) {
      throw new RangeError(
        `Cannot append a tree: the parent of node ${i} must be -1 or an earlier node in [0, ${i}), got ${p}`,
      );
    }
    depths[i] = p === -1 ? 0 : depths[p] + 1;
    if (depths[i] > deepest) deepest = depths[i];
  }
  if (model.length + deepest + 1 > model.maxLength) {
    throw new RangeError(
      `Cannot append a tree: ${model.length} held + depth ${
        deepest + 1
      } exceeds the context limit of ${model.maxLength} tokens`,
    );
  }
  return depths;
}

/**
 * Checks the argument of {@linkcode CausalModel.keepTreePath} against the pending tree's parents.
 *
 * @param nodes The chain to keep, root first (possibly empty).
 * @param parents The parents the pending tree was appended with.
 * @throws {RangeError} a node outside the tree, or `nodes` not a root-to-node chain
 *   (`parents[nodes[0]] = −1`, `parents[nodes[j]] = nodes[j − 1]`).
 * @example
 * ```ts
 * import { checkKeepTreePath } from "./model.ts";
 * import assert from "node:assert/strict";
 * const parents = [-1, 0, 1, 2, 1];
 * checkKeepTreePath([0, 1, 4], parents);
 * checkKeepTreePath([], parents);
 * assert.throws(() => checkKeepTreePath([0, 4], parents), /chain/);
 * ```
 */
export function checkKeepTreePath(nodes: ArrayLike<number>, parents: ArrayLike<number>): void {
  if (!nodes || typeof nodes.length !== "number") {
    throw new RangeError(
      `Cannot keep a tree path: nodes must be a list of node indices, got ${typeof nodes}`,
    );
  }
  for (let j = 0; j < nodes.length; j++) {
    const node = nodes[j];
    if (!Number.isInteger(node) || node < 0 || node >= parents.length) {
      throw new RangeError(
        `Cannot keep a tree path: node ${j} of the path is ${node}, outside the tree [0, ${parents.length})`,
      );
    }
    const want = j === 0 ? -1 : nodes[j - 1];
    if (parents[node] !== want) {
      throw new RangeError(
        `Cannot keep a tree path: the path must be a root-to-node chain, but the parent of node ${node} ` +
          `(entry ${j}) is ${parents[node]}, not ${want}`,
      );
    }
  }
}
