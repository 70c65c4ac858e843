/**
 * The demo's speed table and its explanation, for any model pair: each row generates the same
 * prompt with the same seeds (so every row samples the same distribution, the target's, and rows
 * differ only in speed), then a "why" table from the same run (where a block's time goes, and the
 * scoring forward's t(k, L+1) measured alone) and a verdict on a stated goal with the measured
 * reasons when it is not met. Used by tools/demo.ts for the real pair and the bundled toy pair.
 *
 * @module
 */

import type { GenerationMethod, GenerationPrompt, SpeculativeGenerator } from "../mod.ts";
import { measureLatency } from "../bench/_latency.ts";

/** One configuration to measure. */
export interface RowSpec {
  label: string;
  method: GenerationMethod;
  k: number;
  L: number;
}

/** A measured row. */
export interface Row extends RowSpec {
  tokensPerSecond: number;
  efficiency: number;
  /** Per block (autoregressive: per token), ms: target forwards, draft forwards + sampling, the rest. */
  targetMs: number;
  draftMs: number;
  otherMs: number;
  /** Accepted depth-1 draft tokens ÷ blocks that verified depth 1 (NaN: autoregressive). */
  alpha1: number;
  /** Mean draft length per block (auto: over the plans it ran; 0 for autoregressive). */
  meanL: number;
}

/** What one table is measured with. */
export interface TableOptions {
  prompt: GenerationPrompt;
  maxNewTokens: number;
  runs: number;
  temperature: number;
  seed: number;
}

/** Measures one row: `runs` generations with seeds seed, seed+1, … */
export async function measureRow(
  generator: SpeculativeGenerator,
  spec: RowSpec,
  o: TableOptions,
): Promise<Row> {
  let tokens = 0, ms = 0, blocks = 0, targetMs = 0, draftMs = 0, accepted = 0, reached = 0, lengthBlocks = 0;
  for (let r = 0; r < o.runs; r++) {
    const { stats } = await generator.generate(o.prompt, {
      method: spec.method,
      k: spec.k,
      draftLength: spec.L,
      maxNewTokens: o.maxNewTokens,
      temperature: o.temperature,
      seed: o.seed + r,
    });
    tokens += stats.tokens;
    ms += stats.totalMs;
    blocks += stats.blocks;
    targetMs += stats.targetMs;
    draftMs += stats.draftMs;
    accepted += stats.acceptedPerDepth[0] ?? 0;
    reached += stats.reachedPerDepth[0] ?? 0;
    for (const p of stats.plans) lengthBlocks += p.draftLength * p.blocks;
  }
  return {
    ...spec,
    tokensPerSecond: (tokens * 1000) / ms,
    efficiency: tokens / blocks,
    targetMs: targetMs / blocks,
    draftMs: draftMs / blocks,
    otherMs: (ms - targetMs - draftMs) / blocks,
    alpha1: reached > 0 ? accepted / reached : NaN,
    meanL: lengthBlocks / blocks,
  };
}

/**
 * Measures every row (after a warm-up generation, plus one `auto` generation when a row is `auto`,
 * so that its one-off cost calibration stays out of the table) and prints the speed table; rows[0]
 * must be autoregressive.
 */
export async function speedTable(
  generator: SpeculativeGenerator,
  specs: readonly RowSpec[],
  o: TableOptions,
): Promise<Row[]> {
  await measureRow(generator, { label: "warm-up", method: "spectr", k: 2, L: 2 }, { ...o, runs: 1 });
  const auto = specs.find((s) => s.method === "auto");
  if (auto) {
    await measureRow(generator, { ...auto, label: "warm-up" }, { ...o, runs: 1, maxNewTokens: 8 });
    console.log(`(${auto.label}: its one-off cost calibration ran in the warm-up, not in its row)`);
  }
  const rows: Row[] = [];
  for (const spec of specs) rows.push(await measureRow(generator, spec, o));
  const ar = rows[0].tokensPerSecond;
  const bestSd = best(rows.filter((r) => r.method === "sd"));
  console.log("method                  tokens/s   block eff.   vs autoregressive   vs best sd");
  for (const r of rows) {
    console.log(
      `${r.label.padEnd(22)} ${r.tokensPerSecond.toFixed(1).padStart(9)}   ${
        r.efficiency.toFixed(2).padStart(9)
      }   ${(r.tokensPerSecond / ar).toFixed(2).padStart(15)}x   ${
        bestSd ? (r.tokensPerSecond / bestSd.tokensPerSecond).toFixed(2).padStart(9) + "x" : "—"
      }`,
    );
  }
  if (bestSd) console.log(`best sd: ${bestSd.label}`);
  return rows;
}

const fmt = (x: number) => Number.isFinite(x) ? x.toFixed(2) : "—";

/**
 * A row's costs in autoregressive steps (`arStep` ms): c_v = (target + rest) per block, c_d = draft
 * per depth (per block ÷ L), so that speed-up = tokens per block ÷ (c_v + L·c_d).
 */
export function costs(r: Row, arStep: number): { cV: number; cD: number } {
  return {
    cV: (r.targetMs + r.otherMs) / arStep,
    cD: r.meanL > 0 ? r.draftMs / r.meanL / arStep : 0,
  };
}

/** The fastest row. */
export function best(rows: readonly Row[]): Row | undefined {
  return rows.reduce<Row | undefined>(
    (a, b) => (a === undefined || b.tokensPerSecond > a.tokensPerSecond ? b : a),
    undefined,
  );
}

/**
 * Prints why the table looks as it does: per-block time in autoregressive steps, tokens per
 * block, the scoring forward t(k, L+1)/t(1,1) measured alone, and "if flat" (the speed-up if the
 * scoring forward cost one token's forward, all else as measured).
 */
export async function whyTable(
  generator: SpeculativeGenerator,
  rows: readonly Row[],
): Promise<(b: number, n: number) => number> {
  const cells = [[1, 1], ...rows.slice(1).map((r) => [r.k, r.L + 1])] as [number, number][];
  const tT = await measureLatency(generator.target, cells);
  const t = (b: number, n: number) => tT.get(`${b}x${n}`)!;
  const ar = rows[0];
  const arStep = ar.targetMs + ar.draftMs + ar.otherMs;
  console.log(
    `\nWhy: time per block in this run, ms (autoregressive: ${arStep.toFixed(2)} ms per token, ${
      ar.targetMs.toFixed(2)
    } of it in the target);`,
  );
  console.log(`t(k, L+1) = one scoring forward over k rows × L+1 tokens measured alone, past 64 tokens.`);
  console.log(
    "method                  target   draft   rest   block/AR step   tokens/block   t(k,L+1)/t(1,1)   if flat",
  );
  for (const r of rows.slice(1)) {
    const block = r.targetMs + r.draftMs + r.otherMs;
    const flat = r.efficiency * arStep / (ar.targetMs + r.draftMs + r.otherMs);
    console.log(
      `${r.label.padEnd(22)} ${r.targetMs.toFixed(2).padStart(7)} ${r.draftMs.toFixed(2).padStart(7)} ${
        r.otherMs.toFixed(2).padStart(6)
      } ${(block / arStep).toFixed(2).padStart(14)}x ${r.efficiency.toFixed(2).padStart(14)} ${
        (t(r.k, r.L + 1) / t(1, 1)).toFixed(2).padStart(16)
      }x ${flat.toFixed(2).padStart(8)}x`,
    );
  }
  return t;
}

/**
 * Prints the verdict on "best exact speculative row ≥ `goal`× autoregressive" and, when it is not
 * met, the two measured reasons (scoring cost grows with tokens; the draft's calls cost a share of
 * a step).
 */
export async function verdict(
  generator: SpeculativeGenerator,
  rows: readonly Row[],
  t: (b: number, n: number) => number,
  goal: number,
  backend: string,
): Promise<boolean> {
  const ar = rows[0];
  const arStep = ar.targetMs + ar.draftMs + ar.otherMs;
  const top = best(rows.slice(1))!;
  const met = top.tokensPerSecond >= goal * ar.tokensPerSecond;
  const auto = rows.find((r) => r.method === "auto");
  const fixed = best(rows.filter((r) => r.method !== "auto"))!;
  if (auto) {
    const vsBest = auto.tokensPerSecond / fixed.tokensPerSecond;
    const vsAr = auto.tokensPerSecond / ar.tokensPerSecond;
    console.log(
      `
auto: ${auto.tokensPerSecond.toFixed(1)} tokens/s = ${
        vsBest.toFixed(2)
      }x the best fixed method (${fixed.label}; ` +
        `goal 0.95x: ${vsBest >= 0.95 ? "met" : "NOT met"}) and ${
          vsAr.toFixed(2)
        }x autoregressive (goal 1.0x: ${vsAr >= 1 ? "met" : "NOT met"}) on ${backend}.`,
    );
  }
  console.log(
    `\nSpeed-up = tokens/block ÷ block/AR step. Goal best exact method >= ${goal}x autoregressive: ${
      met ? "met" : "NOT met"
    } on ${backend} (best: ${top.label}, ${(top.tokensPerSecond / ar.tokensPerSecond).toFixed(2)}x).`,
  );
  const c = costs(top, arStep);
  console.log(
    `Verdict from this run: ${top.label} ${top.tokensPerSecond.toFixed(1)} tokens/s vs autoregressive ${
      ar.tokensPerSecond.toFixed(1)
    } tokens/s = ${(top.tokensPerSecond / ar.tokensPerSecond).toFixed(2)}x, with α = ${
      fmt(top.alpha1)
    } (accepted ÷ verified depth-1 draft tokens), c_v = ${fmt(c.cV)}, c_d = ${fmt(c.cD)} ` +
      `(autoregressive steps of ${arStep.toFixed(2)} ms; ${top.efficiency.toFixed(2)} tokens per block ÷ ` +
      `(c_v + ${fmt(top.meanL)}·c_d) = ${(top.efficiency / (c.cV + top.meanL * c.cD)).toFixed(2)}x).`,
  );
  if (!met && !generator.draft) {
    // A feature drafter (proposer "eagle") has no draft CausalModel to time alone: its c_d above is the measure.
    console.log(
      `Measured reasons: (1) tokens per block: ${top.efficiency.toFixed(2)} for ${top.label} (α = ${
        fmt(top.alpha1)
      }); (2) a block costs c_v = ${fmt(c.cV)} steps to score and verify (t(${top.k},${top.L + 1})/t(1,1) = ${
        (t(top.k, top.L + 1) / t(1, 1)).toFixed(2)
      }); (3) drafting costs c_d = ${fmt(c.cD)} steps per depth.`,
    );
  } else if (!met) {
    const tD = await measureLatency(generator.draft!, [[1, 1]]);
    const ratio = t(1, 1) / tD.get("1x1")!;
    const flatBest = Math.max(
      ...rows.slice(1).map((r) => r.efficiency * arStep / (ar.targetMs + r.draftMs + r.otherMs)),
    );
    console.log(
      `Measured reasons: (1) tokens per block: ${
        top.efficiency.toFixed(2)
      } for ${top.label} (the draft's acceptance sets it);\n` +
        `(2) a scoring forward of k×(L+1) tokens costs t(${top.k},${top.L + 1})/t(1,1) = ${
          (t(top.k, top.L + 1) / t(1, 1)).toFixed(2)
        }× a one-token forward;\n` +
        `(3) drafting is not free: the draft's calls cost ${
          (top.draftMs / arStep).toFixed(2)
        } autoregressive steps per block ` +
        `(one draft call ${tD.get("1x1")!.toFixed(2)} ms vs ${t(1, 1).toFixed(2)} ms for the target, ${
          ratio.toFixed(1)
        }× cheaper);\n` +
        `even with a flat scoring forward these rows would give at most ${flatBest.toFixed(2)}×.`,
    );
  }
  return met;
}
