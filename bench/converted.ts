/**
 * `deno task bench:converted <folder>`: per-call latency t(rows, tokens) at past 64 of a converted
 * model folder (tools/convert.ts), for each ONNX file it has (fp32, q4), on cpu (onnxruntime-node,
 * 2 threads) and wasm (1 thread): bench/_latency.ts, median over rounds of the mean of `--calls`
 * calls. The folder needs a config.json.
 *
 * Options: `--backends cpu,wasm`, `--dtypes fp32,q4`, `--rounds 5`, `--calls 4`. On the harness
 * (bench/_harness.ts): its header line first; the last line is one JSON object `{"header", "folder",
 * "rounds", "calls", "rows": [{backend, dtype, ms: {"1x1": ms, …}}…]}`.
 *
 * @module
 */

import type { ModelDtype } from "../mod.ts";
import { getBackend } from "../src/backend/mod.ts";
import { OnnxCausalLM } from "../src/model/causal_lm.ts";
import {
  choiceListFlag,
  dtypeFile,
  exists,
  finishBench,
  FlagError,
  formatHeader,
  formatTable,
  intFlag,
  listFlag,
  machineHeader,
  parseFlags,
  runMain,
} from "./_harness.ts";
import { cellKey, measureLatency } from "./_latency.ts";

const CELLS: [number, number][] = [[1, 1], [1, 5], [1, 9], [2, 5], [4, 5]];

/** One measured (backend, dtype). */
interface Row {
  backend: string;
  dtype: string;
  ms: Record<string, number>;
}

async function main(): Promise<void> {
  const flags = parseFlags(
    "bench:converted",
    {
      allowPositionals: true,
      options: {
        backends: { type: "string", default: "cpu,wasm" },
        dtypes: { type: "string", default: "fp32,q4" },
        rounds: { type: "string", default: "5" },
        calls: { type: "string", default: "4" },
      },
    },
    Deno.args,
    "<folder>",
  );
  if (!flags) return;
  const { values, positionals } = flags;
  if (positionals.length !== 1) {
    const given = positionals.join(" ");
    throw new FlagError(
      "folder",
      given,
      "",
      `bench:converted <folder>: one model folder, got ${JSON.stringify(given)}`,
    );
  }
  const folder = positionals[0].endsWith("/") ? positionals[0] : `${positionals[0]}/`;
  if (!exists(`${folder}config.json`)) {
    throw new FlagError("folder", positionals[0], "a folder with a config.json");
  }
  const backends = choiceListFlag("backends", values.backends, ["cpu", "wasm"], []);
  const dtypes = listFlag("dtypes", values.dtypes, []) as ModelDtype[];
  const rounds = intFlag("rounds", values.rounds, 5), calls = intFlag("calls", values.calls, 4);
  const header = machineHeader("bench:converted");
  console.log(formatHeader(header));
  console.log(
    `${folder}: past 64, median of ${rounds} rounds x ${calls} calls, ms per append (rows x tokens)`,
  );
  const rows: Row[] = [];
  for (const backend of backends) {
    for (const dtype of dtypes) {
      if (!exists(`${folder}${dtypeFile(dtype)}`)) {
        console.log(`${backend} ${dtype}: skipped (${folder}${dtypeFile(dtype)} is missing)`);
        continue;
      }
      const model = await OnnxCausalLM.load(folder, {
        backend,
        dtype,
        numThreads: getBackend(backend).threads === "session" ? 2 : 1, // cpu: its own pool per session
      });
      const ms = await measureLatency(model, CELLS, { past: 64, rounds, calls });
      rows.push({ backend, dtype, ms: Object.fromEntries(ms) });
      await model.dispose();
    }
  }
  console.log(formatTable<Row>([
    { header: "backend", value: "backend" },
    { header: "dtype", value: "dtype" },
    ...CELLS.map((c) => ({ header: cellKey(c), value: (r: Row) => r.ms[cellKey(c)], digits: 1 })),
  ], rows));
  finishBench(header, { folder, rounds, calls, rows });
}

if (import.meta.main) await runMain(main);
