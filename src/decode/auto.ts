/**
 * `auto`: the planner that picks each block's method, k and L from a cost model and the acceptance
 * measured online, maximising predicted tokens per second:
 *
 *   E[tokens per block] / (t_target(k rows × (1 + L) tokens) + t_draft(block) + t_verify)
 *
 * over autoregressive (L = 0), the single-draft verifier (block verification by default) at
 * L = 1..maxDraftLength, and the multi-draft verifier (K-SEQ by default) at k ∈ {2, 4} (up to
 * maxDrafts) and the same L.
 *
 * Acceptance model: at every depth t a block verified, the planner reads the target and draft rows
 * the verifier saw (p, q) and records the expected acceptance of one draft, β₁ = Σ min(p, q), and
 * (every few blocks, it costs a ρ* solve) of k′ i.i.d. drafts under K-SEQ, 1 − (1 − β(ρ*))^k′ — the
 * kernel's `solveRho` — so K-SEQ at k′ ≠ k is predicted from the same rows. Depth t's estimate is an
 * exponentially weighted mean over this request's blocks, started from the pair's running estimate
 * (kept across requests, per warp). E[tokens] = 1 + Σ_{j=1..L} Π_{t<j} a(t), where a(t) uses the
 * drafts still alive at depth t (1 + (k − 1)·sᵗ, s the measured share of drafts that survive a depth),
 * times a per-method correction (measured / predicted tokens; block verification's gain over
 * token-level acceptance lands there).
 *
 * Cost model: {@linkcode BlockCostModel} (calibrated at load, refined from every block's timings),
 * plus the per-block overhead (event-loop turns, bookkeeping) and the verifier's time per depth.
 * For plans already run, the measured tokens per ms of their blocks take over from the prediction as
 * evidence accumulates (weight n / (n + 4) after n blocks), so the choice settles on what is
 * actually fastest among the plans the model points to.
 *
 * Exactness: the plan of a block depends only on earlier blocks (their rows, outcomes and timings),
 * never on the block itself, so every token stays an exact sample of the target. Because timings
 * enter the choice, two runs with the same seed may choose differently (each is exact); pass a
 * fixed cost model and `learnCost: false` for reproducible runs.
 *
 * @module
 */

import type { Kernel, Probs } from "../kernel/types.ts";
import { getVerifier } from "../verify/mod.ts";
import type { Verifier } from "../verify/types.ts";
import type { BlockCostModel } from "./cost.ts";
import type { BlockOutcome, BlockPlan, BlockPlanner } from "./plan.ts";

/** Options of {@linkcode AutoPlanner}. */
export interface AutoPlannerOptions {
  /** Target and draft forward costs (e.g. from `calibrateBlockCost`). */
  cost: BlockCostModel;
  /**
   * Longest draft considered.
   * @default {4}
   */
  maxDraftLength?: number;
  /**
   * Most drafts considered (k ∈ {1, 2, 4} up to this).
   * @default {4}
   */
  maxDrafts?: number;
  /**
   * Verifier for one draft.
   * @default {"block"}
   */
  single?: Verifier | string;
  /**
   * Verifier for k ≥ 2 drafts.
   * @default {"kseq"}
   */
  multi?: Verifier | string;
  /**
   * After this many autoregressive blocks in a row, run the best speculative plan once, to keep
   * measuring acceptance.
   * @default {8}
   */
  exploreEvery?: number;
  /**
   * Every this many blocks, run another plan instead of the best one — in turn the runner-up of the
   * best plan's family (another L) and the best of another family (autoregressive, k = 1, 2, 4) — so
   * that no estimate goes stale.
   * @default {16}
   */
  refreshEvery?: number;
  /**
   * Refine the cost model from block timings (off: choices depend only on the rows, so a seed
   * reproduces a run).
   * @default {true}
   */
  learnCost?: boolean;
  /** Weight of one block in the request's running estimates. @default {0.2} */
  rate?: number;
  /**
   * The target scores k ≥ 2 drafts as one row of their merged tree (the scorer does so when the
   * model supports it): K-SEQ's forward is then 1 × (1 + unique nodes) instead of k × (1 + L).
   * @default {false}
   */
  treeScoring?: boolean;
}

/** One candidate's prediction. */
export interface AutoCandidate {
  /** The plan. */
  plan: BlockPlan;
  /** Predicted tokens per block. */
  tokens: number;
  /** Predicted ms per block. */
  ms: number;
}

const PRIOR_ACCEPTANCE = 0.5;
const MULTI_EVERY = 4;

/** Running acceptance by depth for each k′. */
class AcceptanceTable {
  /** `values[k][t]`. */
  readonly values = new Map<number, number[]>();

  constructor(readonly ks: readonly number[]) {
    for (const k of ks) this.values.set(k, []);
  }

  clone(): AcceptanceTable {
    const t = new AcceptanceTable(this.ks);
    for (const [k, v] of this.values) t.values.set(k, v.slice());
    return t;
  }

  update(k: number, depth: number, value: number, rate: number): void {
    const row = this.values.get(k)!;
    while (row.length <= depth) row.push(NaN);
    row[depth] = Number.isNaN(row[depth]) ? value : row[depth] + rate * (value - row[depth]);
  }

  /** Acceptance of k′ (fractional: interpolated in k) drafts at depth t; deeper than measured: the last. */
  get(k: number, depth: number): number {
    const ks = this.ks;
    if (k <= ks[0]) return this.#at(ks[0], depth);
    for (let i = 1; i < ks.length; i++) {
      if (k <= ks[i]) {
        const a = this.#at(ks[i - 1], depth), b = this.#at(ks[i], depth);
        return a + ((b - a) * (k - ks[i - 1])) / (ks[i] - ks[i - 1]);
      }
    }
    return this.#at(ks[ks.length - 1], depth);
  }

  #at(k: number, depth: number): number {
    const row = this.values.get(k)!;
    for (let t = Math.min(depth, row.length - 1); t >= 0; t--) if (!Number.isNaN(row[t])) return row[t];
    // Until K-SEQ's acceptance is measured (from any block's rows), assume no gain over one draft.
    if (k !== this.ks[0]) return this.#at(this.ks[0], depth);
    return PRIOR_ACCEPTANCE;
  }
}

/** A plan's identity for the measured rates. */
function planKey(plan: BlockPlan): string {
  return `${plan.verifier.name} ${plan.draftLength === 0 ? 1 : plan.k} ${plan.draftLength}`;
}

/** β₁ = Σ min(p, q): the acceptance probability of one draft (1 − total variation). */
function overlap(p: Probs, q: Probs): number {
  let s = 0;
  for (let i = 0; i < p.length; i++) s += p[i] < q[i] ? p[i] : q[i];
  return s;
}

/**
 * The `auto` planner (see the module notes).
 *
 * @example
 * ```ts
 * import { AutoPlanner } from "./auto.ts";
 * import { ForwardCost } from "./cost.ts";
 * const target = new ForwardCost({ rows: [1, 1, 4], tokens: [1, 5, 5], ms: [10, 11, 30] });
 * const draft = new ForwardCost({ rows: [1], tokens: [1], ms: [0.5] });
 * const planner = new AutoPlanner({ cost: { target, draft } });
 * planner.start();
 * const plan = planner.plan();
 * console.assert(plan.draftLength >= 0 && plan.k >= 1);
 * ```
 */
export class AutoPlanner implements BlockPlanner {
  /** `"auto"`. */
  readonly name = "auto";
  /** The cost model. */
  readonly cost: BlockCostModel;
  /** The single-draft verifier. */
  readonly single: Verifier;
  /** The multi-draft verifier. */
  readonly multi: Verifier;
  readonly #ks: number[];
  readonly #maxL: number;
  readonly #exploreEvery: number;
  readonly #learnCost: boolean;
  readonly #rate: number;
  readonly #autoregressive: Verifier;
  #pair: AcceptanceTable;
  #request: AcceptanceTable;
  #survival = NaN;
  readonly #correction = new Map<string, number>();
  readonly #verifyMs = new Map<string, number>();
  #draftFactor = 1;
  /** Per-block time outside the target, draft and verifier (event-loop turns, bookkeeping), ms. */
  #overheadMs: number | undefined;
  #arStreak = 0;
  #observed = 0;
  #planned = 0;
  #kept: string | undefined;
  readonly #refreshEvery: number;
  readonly #treeScoring: boolean;
  /** Measured tokens per ms of the plans run (pair-level, across requests). */
  readonly #measured = new Map<string, { rate: number; n: number }>();
  /** Unique tree nodes per draft token (k ≥ 2 drafts share prefixes), by k. */
  readonly #uniqueShare = new Map<number, number>();
  #last: AutoCandidate | undefined;

  /**
   * A planner over the given cost model and verifiers.
   *
   * @throws {RangeError} bad maxDraftLength / maxDrafts, unknown verifier names.
   */
  constructor(options: AutoPlannerOptions) {
    const {
      cost,
      maxDraftLength = 4,
      maxDrafts = 4,
      exploreEvery = 8,
      refreshEvery = 16,
      learnCost = true,
      rate = 0.2,
    } = options;
    if (!Number.isInteger(maxDraftLength) || maxDraftLength < 1) {
      throw new RangeError(`Cannot plan auto: maxDraftLength must be an integer >= 1, got ${maxDraftLength}`);
    }
    if (!Number.isInteger(maxDrafts) || maxDrafts < 1) {
      throw new RangeError(`Cannot plan auto: maxDrafts must be an integer >= 1, got ${maxDrafts}`);
    }
    this.cost = cost;
    this.single = typeof options.single === "string" || options.single === undefined
      ? getVerifier(options.single ?? "block")
      : options.single;
    this.multi = typeof options.multi === "string" || options.multi === undefined
      ? getVerifier(options.multi ?? "kseq")
      : options.multi;
    this.#ks = [1, 2, 4].filter((k) => k <= maxDrafts && (k === 1 || k <= this.multi.maxCandidates));
    this.#maxL = maxDraftLength;
    this.#exploreEvery = exploreEvery;
    this.#refreshEvery = refreshEvery;
    this.#treeScoring = options.treeScoring ?? false;
    this.#learnCost = learnCost;
    this.#rate = rate;
    this.#pair = new AcceptanceTable(this.#ks);
    this.#request = this.#pair.clone();
    // L = 0 blocks run the single verifier on an empty proposal: one draw from p.
    this.#autoregressive = this.single;
  }

  /** A new request: its estimates start from the pair's. */
  start(): void {
    this.#request = this.#pair.clone();
    this.#arStreak = 0;
  }

  /** Every candidate with its prediction, best first. */
  candidates(): AutoCandidate[] {
    const out: AutoCandidate[] = [];
    const { target } = this.cost;
    const verifyMs = (name: string, k: number, L: number) =>
      (this.#verifyMs.get(`${name}:${k}`) ?? 0) * (L + 1);
    const overhead = this.#overheadMs ?? 0;
    out.push({
      plan: { verifier: this.#autoregressive, k: 1, draftLength: 0 },
      tokens: 1,
      ms: target.predict(1, 1) + verifyMs(this.#autoregressive.name, 0, 0) + overhead,
    });
    for (const k of this.#ks) {
      const verifier = k === 1 ? this.single : this.multi;
      for (let L = 1; L <= this.#maxL; L++) {
        const tokens = this.#modelTokens(k, L) * (this.#correction.get(`${verifier.name}:${k}`) ?? 1);
        const draftMs = this.#modelDraftMs(k, L) * this.#draftFactor;
        const targetMs = k > 1 && this.#treeScoring
          ? target.predict(1, 1 + Math.max(L, (this.#uniqueShare.get(k) ?? 1) * k * L))
          : target.predict(k, 1 + L);
        out.push({
          plan: { verifier, k, draftLength: L },
          tokens: Math.max(1, tokens),
          ms: targetMs + draftMs + verifyMs(verifier.name, k, L) + overhead,
        });
      }
    }
    // Plans already run: their measured tokens per ms (blocks' wall time, overhead included) take
    // over from the prediction as evidence accumulates (weight n / (n + 4)).
    for (const c of out) {
      const seen = this.#measured.get(planKey(c.plan));
      if (!seen) continue;
      const w = seen.n / (seen.n + 4);
      const rate = (1 - w) * (c.tokens / c.ms) + w * seen.rate;
      c.ms = c.tokens / rate;
    }
    return out.sort((a, b) => b.tokens / b.ms - a.tokens / a.ms);
  }

  /**
   * The candidate with the best predicted tokens/s; a speculative one after a run of autoregressive
   * blocks, and every `refreshEvery` blocks the best of another family.
   */
  plan(): BlockPlan & { predicted: AutoCandidate } {
    const ranked = this.candidates();
    let best = ranked[0];
    // Hysteresis: keep the plan of the previous (non-refresh) choice unless another is predicted
    // ≥ 5 % faster — every change of shape has its own cost (sessions re-plan their buffers).
    const kept = this.#kept === undefined ? undefined : ranked.find((c) => planKey(c.plan) === this.#kept);
    if (kept && kept.tokens / kept.ms >= 0.95 * (best.tokens / best.ms)) best = kept;
    this.#kept = planKey(best.plan);
    this.#planned++;
    if (this.#refreshEvery > 0 && this.#planned % this.#refreshEvery === 0) {
      const family = (c: AutoCandidate) => (c.plan.draftLength === 0 ? 0 : c.plan.k);
      const families = [...new Set(ranked.map(family))].filter((f) => f !== family(best));
      const turn = this.#planned / this.#refreshEvery;
      // Every other refresh: the runner-up L of the best plan's own family; else another family.
      const other = turn % 2 === 1
        ? ranked.find((c) => family(c) === family(best) && c !== best)
        : ranked.find((c) => family(c) === families[(turn / 2) % families.length]);
      if (other) {
        this.#last = other;
        return { ...other.plan, predicted: other };
      }
    }
    if (best.plan.draftLength === 0) {
      this.#arStreak++;
      if (this.#arStreak >= this.#exploreEvery || this.#observed === 0) {
        best = ranked.find((c) => c.plan.draftLength > 0) ?? best;
        this.#arStreak = 0;
      }
    } else this.#arStreak = 0;
    this.#last = best;
    return { ...best.plan, predicted: best };
  }

  /** Learns from the block just run: acceptance rows, survival, tokens vs predicted, timings. */
  observe(outcome: BlockOutcome): void {
    const { plan, proposal, scores, result, kernel } = outcome;
    const rate = this.#rate;
    const L = proposal.draftLength;
    const k = proposal.k;
    this.#observed++;
    // Acceptance at every depth the verifier reached, from the rows it read.
    let survivors: number[] = [];
    for (let r = 0; r < k; r++) survivors.push(r);
    const multi = this.#observed % MULTI_EVERY === 1;
    for (let t = 0; t < Math.min(result.reached, L); t++) {
      const first = survivors[0];
      const p = scores.probs(first, t), q = proposal.probs[first][t];
      this.#record(kernel, p, q, t, multi);
      if (t >= result.accepted) break;
      const next = survivors.filter((r) => proposal.tokens[r][t] === result.tokens[t]);
      if (k > 1 && t === 0) {
        const share = (next.length - 1) / (k - 1);
        this.#survival = Number.isNaN(this.#survival)
          ? share
          : this.#survival + rate * (share - this.#survival);
      }
      survivors = next.length > 0 ? next : survivors;
    }
    // The method's correction: measured tokens over the acceptance model's prediction.
    if (L > 0) {
      const key = `${plan.verifier.name}:${k}`;
      const ratio = result.tokens.length / this.#modelTokens(k, L);
      const old = this.#correction.get(key) ?? 1;
      this.#correction.set(key, old + 0.1 * (ratio - old));
    }
    if (k > 1 && L > 0 && outcome.scored.rows === 1) {
      const share = (outcome.scored.tokens - outcome.pendingTokens) / (k * L);
      const old = this.#uniqueShare.get(k);
      this.#uniqueShare.set(k, old === undefined ? share : old + rate * (share - old));
    }
    if (this.#learnCost && outcome.pendingTokens <= 2) {
      if (outcome.blockMs > 0) {
        // The plan as planned (a lookup proposal may come back shorter: it is the plan's outcome).
        const key = planKey(plan);
        const measured = result.tokens.length / outcome.blockMs;
        const seen = this.#measured.get(key);
        if (!seen) this.#measured.set(key, { rate: measured, n: 1 });
        else {
          seen.n++;
          seen.rate += Math.max(0.1, 1 / seen.n) * (measured - seen.rate);
        }
      }
      this.cost.target.observe(outcome.scored.rows, outcome.scored.tokens, outcome.targetMs);
      if (L > 0) {
        const ratio = outcome.draftMs / this.#modelDraftMs(k, L);
        if (Number.isFinite(ratio) && ratio > 0) this.#draftFactor += 0.1 * (ratio - this.#draftFactor);
      }
      // Verification time per depth it could read (L + 1 rows), per verifier and k (L = 0: k = 0).
      const vkey = `${plan.verifier.name}:${L === 0 ? 0 : k}`;
      const perDepth = outcome.verifyMs / (L + 1);
      const old = this.#verifyMs.get(vkey);
      this.#verifyMs.set(vkey, old === undefined ? perDepth : old + 0.1 * (perDepth - old));
      const overhead = Math.max(0, outcome.blockMs - outcome.targetMs - outcome.draftMs - outcome.verifyMs);
      this.#overheadMs = this.#overheadMs === undefined
        ? overhead
        : this.#overheadMs + 0.1 * (overhead - this.#overheadMs);
    }
  }

  /** The last choice and its prediction. */
  get last(): AutoCandidate | undefined {
    return this.#last;
  }

  /**
   * The acceptance model's tokens per block for k drafts of L tokens (before the method's
   * correction): 1 + Σ_{j=1..L} Π_{t<j} a(t), with 1 + (k − 1)·sᵗ drafts alive at depth t.
   */
  #modelTokens(k: number, L: number): number {
    const survival = Number.isNaN(this.#survival) ? this.#request.get(1, 0) : this.#survival;
    let tokens = 1, alive = 1;
    for (let t = 0; t < L; t++) {
      alive *= this.#request.get(1 + (k - 1) * survival ** t, t);
      tokens += alive;
    }
    return tokens;
  }

  /** The cost model's draft time of a block (before the online factor): the pending call, then L − 1 k-row steps. */
  #modelDraftMs(k: number, L: number): number {
    const { draft } = this.cost;
    return draft.predict(1, 2) + (L - 1) * draft.predict(k, 1);
  }

  #record(kernel: Kernel, p: Probs, q: Probs, depth: number, multi: boolean): void {
    const one = overlap(p, q);
    for (const table of [this.#request, this.#pair]) {
      const rate = table === this.#request ? this.#rate : this.#rate / 4;
      table.update(1, depth, one, rate);
    }
    if (!multi) return;
    for (const k of this.#ks) {
      if (k === 1) continue;
      const acceptance = one >= 1 ? 1 : one <= 0 ? 0 : kernel.solveRho(p, q, k).acceptance;
      for (const table of [this.#request, this.#pair]) {
        const rate = table === this.#request ? this.#rate : this.#rate / 4;
        table.update(k, depth, acceptance, rate);
      }
    }
  }
}
