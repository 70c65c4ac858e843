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
import { measureLatency } from "./_latency.ts";

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
  let tokens = 0, ms = 0, blocks = 0, targetMs = 0, draftMs = 0;
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
  }
  return {
    ...spec,
    tokensPerSecond: (tokens * 1000) / ms,
    efficiency: tokens / blocks,
    targetMs: targetMs / blocks,
    draftMs: draftMs / blocks,
    otherMs: (ms - targetMs - draftMs) / blocks,
  };
}

/** Measures every row (after one warm-up generation) and prints the speed table; rows[0] must be autoregressive. */
export async function speedTable(
  generator: SpeculativeGenerator,
  specs: readonly RowSpec[],
  o: TableOptions,
): Promise<Row[]> {
  await measureRow(generator, { label: "warm-up", method: "spectr", k: 2, L: 2 }, { ...o, runs: 1 });
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
  if (!met) {
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
