/**
 * Prompt lookup (n-gram) drafting: a model-free {@linkcode Proposer} that drafts by copying. It
 * matches the last n tokens of the text so far (prompt + accepted output) against earlier positions
 * of that same text and proposes what followed there. It costs no draft forwards, and it pays off
 * where the output quotes its input (repeating, editing, summarising, code, chat over a document).
 *
 * @module
 */

import type { Probs } from "../kernel/types.ts";
import type { Random } from "../random.ts";
import {
  checkProposalRequest,
  type DraftProposal,
  type ProposalRequest,
  type Proposer,
  type ProposerKind,
  type ProposerParts,
} from "./proposer.ts";

/** Options of {@linkcode LookupProposer}. */
export interface LookupProposerOptions {
  /** Vocabulary size of the q rows (the target's). */
  vocabSize: number;
  /**
   * Longest n-gram tried (an integer ≥ minNgram).
   * @default {3}
   */
  maxNgram?: number;
  /**
   * Shortest n-gram tried (an integer ≥ 1). The default leaves 1-gram matches out: on
   * SmolLM2-135M-Instruct q8 (`deno task bench:lookup --threads 1`, with and without
   * `--min-ngram 1`; greedy, a short story) 1-grams drafted in 46% of the blocks with 17% of the drafted tokens accepted, each such block paying for
   * a wider target call (0.71–0.85× autoregressive); from 2-grams up, 9% and 27% (0.93–1.00×),
   * while prompts that quote their input kept their speed-up (2.0–2.5×).
   * @default {2}
   */
  minNgram?: number;
  /**
   * One-hot q rows kept for reuse (least recently used first out; an integer ≥ 0, 0 allocates a
   * fresh row per proposed token). Each row is a `Float64Array(vocabSize)`.
   * @default {32}
   */
  cachedRows?: number;
}

/** Where a lookup found its continuation. */
export interface LookupMatch {
  /** Length of the matched n-gram. */
  readonly ngram: number;
  /** Index in the history of the first continuation token. */
  readonly start: number;
  /**
   * The continuation: `history[start .. start + length)`, cut at the end of the history and at the
   * length asked for.
   */
  readonly tokens: number[];
}

/**
 * The lookup rule, written as a plain scan (the reference {@linkcode LookupProposer} is tested
 * against; the proposer itself keeps an n-gram index). For n = maxNgram down to minNgram, the first
 * n whose last-n-token suffix occurred earlier (followed by at least one token) wins, so a longer
 * match beats a shorter one. Among the occurrences of that n-gram, the most recent one still
 * followed by `length` tokens wins; when every occurrence is followed by fewer, the earliest one
 * (the longest continuation) does. The continuation is what follows the occurrence, up to `length`
 * tokens and at most to the end of the history (it may run into the matched suffix itself).
 *
 * Most recent first keeps the draft close to the text being written (a repeated phrase is copied
 * from its latest use); the full-length condition keeps periodic text, where the latest occurrence
 * sits right before the suffix, from being drafted one period at a time.
 *
 * @param history Token ids so far.
 * @param length Most continuation tokens wanted (an integer ≥ 1).
 * @param maxNgram Longest n-gram tried (the proposer's default, 3).
 * @param minNgram Shortest n-gram tried (the proposer's default, 2).
 * @returns The match, or undefined when no n-gram in [minNgram, maxNgram] recurs.
 * @example The last bigram "1 2" occurred at 0 and 3; the later one wins
 * ```ts
 * import { findContinuation } from "./lookup.ts";
 * import assert from "node:assert/strict";
 * const match = findContinuation([1, 2, 7, 1, 2, 8, 9, 1, 2], 2, 2, 2);
 * assert.deepEqual(match, { ngram: 2, start: 5, tokens: [8, 9] });
 * ```
 */
export function findContinuation(
  history: ArrayLike<number>,
  length: number,
  maxNgram = 3,
  minNgram = 2,
): LookupMatch | undefined {
  const h = history.length;
  for (let n = Math.min(maxNgram, h - 1); n >= minNgram; n--) {
    // Occurrences ending at e − 1 with e < h (so a token follows), as continuation starts e.
    const starts: number[] = [];
    for (let e = n; e < h; e++) {
      let same = true;
      for (let i = 1; i <= n && same; i++) same = history[e - i] === history[h - i];
      if (same) starts.push(e);
    }
    if (starts.length === 0) continue;
    const full = starts.filter((e) => h - e >= length);
    const start = full.length > 0 ? full[full.length - 1] : starts[0];
    const tokens: number[] = [];
    for (let j = start; j < h && tokens.length < length; j++) tokens.push(history[j]);
    return { ngram: n, start, tokens };
  }
  return undefined;
}

function checkInteger(name: string, value: unknown, min: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min) {
    throw new RangeError(
      `Cannot build a lookup proposer: ${name} must be an integer >= ${min}, got ${value}`,
    );
  }
  return value;
}

/**
 * Prompt lookup decoding (Saxena 2023, "prompt lookup decoding"; vLLM's n-gram proposer) as a
 * {@linkcode Proposer}: no draft model. It keeps the token history — the prompt and every token the
 * decoder hands it as pending, i.e. the accepted text — and drafts by the rule of
 * {@linkcode findContinuation}: the last n tokens (n = maxNgram down to minNgram, the first n that
 * matches wins) are looked up at their most recent earlier occurrence that is followed by L tokens
 * (else at their earliest, which is followed by the most), and the tokens that followed it are
 * proposed, up to the draft length L asked for and at most to the end of the history. No match: a
 * proposal of length 0, and the decoder runs a target-only step.
 *
 * Every proposed token is a deterministic function of the context (prompt + accepted tokens + the
 * draft tokens before it), so its q row is one-hot; with it, speculative sampling (`sd`) and block
 * verification (`block`) stay exact, whatever the proposal. Rows are shared between proposals (up to
 * `cachedRows` of them): treat them as read-only, as every verifier does.
 *
 * One draft per block: a request for k > 1 drafts gets one (`proposal.k` is 1); the decoder and the
 * verifiers read k from the proposal. The sampling mode is irrelevant (one candidate, one-hot q).
 * It never consumes uniforms, runs no forwards (`calls` is 0) and has no context limit of its own
 * (`room` is Infinity; the decoder bounds the block by the target's context).
 *
 * The history only grows: `propose` takes the pending tokens in, `rollback` returns the accepted
 * draft tokens (not taken in yet), and the decoder hands them back, with the block's last token, as
 * the next pending tokens. An index of every n-gram's occurrences makes a lookup cost
 * O((maxNgram − minNgram + 1) · log history) and each token taken in O(maxNgram − minNgram + 1).
 *
 * @example Greedy decoding of a chain that repeats itself, drafted by lookup
 * ```ts
 * import { LookupProposer } from "./lookup.ts";
 * import { BlockDecoder } from "./decoder.ts";
 * import { MarkovModel } from "./markov.ts";
 * import { referenceKernel } from "../kernel/reference.ts";
 * import assert from "node:assert/strict";
 * // V = 4, order 1: 0 → 1 → 2 → 3 → 0 … is the most likely path.
 * const table = new Float32Array(16);
 * for (let s = 0; s < 4; s++) table[s * 4 + ((s + 1) % 4)] = 5;
 * const target = new MarkovModel({ table, vocabSize: 4 });
 * const proposer = new LookupProposer({ vocabSize: 4 });
 * const decoder = new BlockDecoder({
 *   target, proposer, kernel: referenceKernel, verifier: "sd", draftLength: 4, warp: { temperature: 0 },
 * });
 * const { tokens, stats } = await decoder.generate([0, 1, 2, 3, 0], { maxNewTokens: 12, seed: 1 });
 * assert.deepEqual(tokens, [1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0]);
 * assert.ok(stats.blockEfficiency > 2);
 * assert.equal(stats.draftCalls, 0);
 * ```
 */
export class LookupProposer implements Proposer {
  /** `"lookup"`: n-gram lookup in the text so far. */
  readonly name = "lookup";
  /** Vocabulary size of its q rows. */
  readonly vocabSize: number;
  /** Longest n-gram tried. */
  readonly maxNgram: number;
  /** Shortest n-gram tried. */
  readonly minNgram: number;
  /** No forwards: always 0. */
  readonly calls = 0;
  readonly #cachedRows: number;
  readonly #rows = new Map<number, Float64Array>();
  #history: number[] = [];
  /** `#index[n − minNgram]`: n-gram key → continuation starts of its occurrences, ascending. */
  #index: Map<string, number[]>[] = [];
  #last: DraftProposal | undefined;
  #proposals = 0;
  #matched = 0;
  #proposed = 0;

  /**
   * Builds a proposer over a vocabulary.
   *
   * @throws {TypeError} options that are not an object.
   * @throws {RangeError} vocabSize not an integer ≥ 1, minNgram not an integer ≥ 1, maxNgram not an
   *   integer ≥ minNgram, cachedRows not an integer ≥ 0.
   */
  constructor(options: LookupProposerOptions) {
    if (typeof options !== "object" || options === null) {
      throw new TypeError(`Cannot build a lookup proposer: options must be an object, got ${options}`);
    }
    const { vocabSize, maxNgram = 3, minNgram = 2, cachedRows = 32 } = options;
    this.vocabSize = checkInteger("vocabSize", vocabSize, 1);
    this.minNgram = checkInteger("minNgram", minNgram, 1);
    this.maxNgram = checkInteger("maxNgram", maxNgram, this.minNgram);
    this.#cachedRows = checkInteger("cachedRows", cachedRows, 0);
    this.reset();
  }

  /** The tokens taken in so far (prompt + accepted output), a copy. */
  get history(): number[] {
    return this.#history.slice();
  }

  /** Proposals made since the last reset (L = 0 requests included). */
  get proposals(): number {
    return this.#proposals;
  }

  /** Proposals since the last reset that found a match (and proposed ≥ 1 token). */
  get matched(): number {
    return this.#matched;
  }

  /** Draft tokens proposed since the last reset. */
  get proposedTokens(): number {
    return this.#proposed;
  }

  /** Forgets the history, the index and the counters (a new generation). */
  reset(): void {
    this.#history = [];
    this.#index = [];
    for (let n = this.minNgram; n <= this.maxNgram; n++) this.#index.push(new Map());
    this.#last = undefined;
    this.#proposals = 0;
    this.#matched = 0;
    this.#proposed = 0;
  }

  /** No limit of its own: Infinity (the decoder bounds a block by the target's context). */
  room(_known: number): number {
    return Infinity;
  }

  /**
   * Takes the pending tokens into the history and proposes the continuation of the longest, then
   * most recent full-length (else earliest), earlier match of the history's suffix
   * ({@linkcode findContinuation}).
   *
   * @param pending Tokens since the last call: the prompt first, then what `rollback` returned plus
   *   the block's last token.
   * @param request k ≥ 1 (one draft is proposed whatever k), L ≥ 0 (the most tokens proposed).
   * @param _random Unused: the proposal is deterministic.
   * @returns One draft of 0..L tokens with one-hot q rows (`draftLength` 0 when nothing matches).
   * @throws {RangeError} k not an integer ≥ 1, L not an integer ≥ 0, a pending id outside
   *   [0, vocabSize).
   */
  propose(pending: ArrayLike<number>, request: ProposalRequest, _random?: Random): Promise<DraftProposal> {
    try {
      return Promise.resolve(this.#propose(pending, request));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #propose(pending: ArrayLike<number>, request: ProposalRequest): DraftProposal {
    const { k, draftLength } = request;
    checkProposalRequest(k, draftLength);
    for (let i = 0; i < pending.length; i++) {
      const id = pending[i];
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(
          `Cannot propose drafts: pending token ${i} is ${id}, outside [0, ${this.vocabSize})`,
        );
      }
    }
    for (let i = 0; i < pending.length; i++) this.#push(pending[i]);
    this.#proposals++;
    const tokens = draftLength > 0 ? this.#lookup(draftLength) : [];
    if (tokens.length > 0) this.#matched++;
    this.#proposed += tokens.length;
    this.#last = {
      k: 1,
      draftLength: tokens.length,
      tokens: [Int32Array.from(tokens)],
      probs: [tokens.map((id) => this.#row(id))],
    };
    return this.#last;
  }

  /**
   * Forgets the rejected part of the last proposal (nothing to undo: drafts never enter the
   * history).
   *
   * @param row The draft kept (0: there is one).
   * @param accepted Draft tokens accepted (0..L).
   * @returns The accepted draft tokens, which the decoder hands back (with the block's last token)
   *   as the next pending tokens; none after an L = 0 proposal.
   * @throws {RangeError} no proposal to roll back, row not 0, accepted outside 0..L.
   */
  rollback(row: number, accepted: number): number[] {
    const last = this.#last;
    if (!last) throw new RangeError("Cannot roll the lookup proposer back: no block was proposed");
    if (row !== 0) {
      throw new RangeError(
        `Cannot roll the lookup proposer back: it proposes one draft (row 0), got row ${row}`,
      );
    }
    if (!Number.isInteger(accepted) || accepted < 0 || accepted > last.draftLength) {
      throw new RangeError(
        `Cannot roll the lookup proposer back: accepted must be an integer in [0, ${last.draftLength}], got ${accepted}`,
      );
    }
    this.#last = undefined;
    return Array.from(last.tokens[0].subarray(0, accepted));
  }

  /** Appends one token and indexes every n-gram that it now gives a continuation to. */
  #push(token: number): void {
    const history = this.#history;
    const start = history.length; // the new token's index: the continuation of n-grams ending before it
    for (let n = this.minNgram; n <= this.maxNgram && n <= start; n++) {
      const index = this.#index[n - this.minNgram];
      const k = key(history, start - n, start);
      const starts = index.get(k);
      if (starts) starts.push(start);
      else index.set(k, [start]);
    }
    history.push(token);
  }

  #lookup(length: number): number[] {
    const history = this.#history;
    const h = history.length;
    for (let n = Math.min(this.maxNgram, h); n >= this.minNgram; n--) {
      const starts = this.#index[n - this.minNgram].get(key(history, h - n, h));
      if (starts === undefined) continue;
      // The last start ≤ h − length (followed by `length` tokens), else the first.
      let lo = 0, hi = starts.length; // starts[0..lo) ≤ h − length < starts[hi..)
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (starts[mid] <= h - length) lo = mid + 1;
        else hi = mid;
      }
      const start = lo > 0 ? starts[lo - 1] : starts[0];
      return history.slice(start, Math.min(start + length, h));
    }
    return [];
  }

  /** The one-hot row of `id`, from the cache when it holds it. */
  #row(id: number): Probs {
    const rows = this.#rows;
    let row = rows.get(id);
    if (row) {
      rows.delete(id); // re-inserted last: most recently used
    } else {
      row = new Float64Array(this.vocabSize);
      row[id] = 1;
      if (this.#cachedRows === 0) return row;
      if (rows.size >= this.#cachedRows) rows.delete(rows.keys().next().value!);
    }
    rows.set(id, row);
    return row;
  }
}

function key(history: readonly number[], from: number, to: number): string {
  let s = String(history[from]);
  for (let i = from + 1; i < to; i++) s += "," + history[i];
  return s;
}

/**
 * The registry entry of {@linkcode LookupProposer}: needs nothing but the target's vocabulary; one
 * draft per block, no draft forwards.
 */
export const lookupProposerKind: ProposerKind = Object.freeze({
  name: "lookup",
  maxDrafts: 1,
  missing: () => undefined,
  create: (parts: ProposerParts) => new LookupProposer({ vocabSize: parts.target.vocabSize }),
  timingModel: () => undefined,
  draftingModel: () => undefined,
});
