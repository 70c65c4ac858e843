/**
 * `deno task bench:latency`: per-call latency t(batch, tokens) of the bundled target and draft
 * (models/target, models/draft) through OnnxCausalLM.append at past 64 (the KV expand included),
 * batch ∈ {1, 4}, tokens ∈ {1, 4}, on wasm and cpu (numThreads 1), the models and cells interleaved
 * round by round so machine noise spreads over both (bench/_latency.ts: median over rounds of the
 * mean of `--calls` calls). For a converted folder's dtypes see bench/converted.ts.
 *
 * Options: `--rounds 15`, `--calls 10`, `--backends wasm,cpu`. On the harness (bench/_harness.ts):
 * its header line first, a table per backend; the last line is one JSON object `{"header", "past",
 * "rounds", "calls", "ms": {backend: {"target 1x1": ms, …}}}`.
 *
 * @module
 */

import type { BackendName } from "../mod.ts";
import { OnnxCausalLM } from "../src/model/causal_lm.ts";
import {
  choiceListFlag,
  exists,
  finishBench,
  formatHeader,
  formatTable,
  intFlag,
  machineHeader,
  PAIRS,
  parseFlags,
  runMain,
} from "./_harness.ts";
import { measureLatencies } from "./_latency.ts";

const PAST = 64;
const CELLS: [number, number][] = [[1, 1], [1, 4], [4, 1], [4, 4]];

async function main(): Promise<void> {
  const flags = parseFlags("bench:latency", {
    options: {
      rounds: { type: "string", default: "15" },
      calls: { type: "string", default: "10" },
      backends: { type: "string", default: "wasm,cpu" },
    },
  });
  if (!flags) return;
  const rounds = intFlag("rounds", flags.values.rounds, 15);
  const calls = intFlag("calls", flags.values.calls, 10);
  const backends = choiceListFlag("backends", flags.values.backends, ["wasm", "cpu", "kernel"], []);
  const folders = { target: PAIRS.bundled.target, draft: PAIRS.bundled.draft };
  const names = (["target", "draft"] as const).filter((n) => exists(`${folders[n]}config.json`));
  if (names.length === 0) {
    console.log("bench:latency skipped: models/target and models/draft are missing");
    return;
  }
  const header = machineHeader("bench:latency");
  console.log(formatHeader(header));
  const all: Record<string, Record<string, number>> = {};
  for (const backend of backends as BackendName[]) {
    const models: Record<string, OnnxCausalLM> = {};
    for (const n of names) models[n] = await OnnxCausalLM.load(folders[n], { backend, numThreads: 1 });
    const ms = await measureLatencies(models, CELLS, { past: PAST, rounds, calls });
    all[backend] = Object.fromEntries(ms);
    console.log(
      `\n${backend} (numThreads 1), past ${PAST}, median of ${rounds} rounds x ${calls} calls, ms per append:`,
    );
    type Row = { batch: number; tokens: number; ms: number[] };
    const rows: Row[] = CELLS.map(([b, t]) => ({
      batch: b,
      tokens: t,
      ms: names.map((n) => ms.get(`${n} ${b}x${t}`)!),
    }));
    console.log(formatTable<Row>([
      { header: "batch", value: "batch", digits: 0 },
      { header: "tokens", value: "tokens", digits: 0 },
      ...names.map((n, i) => ({ header: n, value: (r: Row) => r.ms[i], digits: 3 })),
      ...(names.length === 2
        ? [{ header: "target/draft", value: (r: Row) => r.ms[0] / r.ms[1], digits: 2 }]
        : []),
    ], rows));
    for (const m of Object.values(models)) await m.dispose();
  }
  finishBench(header, { past: PAST, rounds, calls, ms: all });
}

if (import.meta.main) await runMain(main);
