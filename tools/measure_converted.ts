/**
 * Per-call latency t(rows, tokens) at past 64 of a converted model folder (tools/convert.ts), for
 * each ONNX file it has (fp32, q4), on cpu (onnxruntime-node, 2 threads) and wasm (1 thread).
 *
 * Run: `deno run -A tools/measure_converted.ts <folder> [--backends cpu,wasm] [--dtypes fp32,q4]`
 * (ROUNDS=5 CALLS=4 by default). The folder needs a config.json.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { getBackend } from "../src/backend/mod.ts";
import { OnnxCausalLM } from "../src/model/causal_lm.ts";
import { measureLatency } from "./_latency.ts";

const CELLS: [number, number][] = [[1, 1], [1, 5], [1, 9], [2, 5], [4, 5]];
const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    backends: { type: "string", default: "cpu,wasm" },
    dtypes: { type: "string", default: "fp32,q4" },
  },
});
if (positionals.length !== 1) {
  console.error("usage: measure_converted.ts <folder> [--backends cpu,wasm] [--dtypes fp32,q4]");
  Deno.exit(2);
}
const rounds = Number(Deno.env.get("ROUNDS") ?? 5), calls = Number(Deno.env.get("CALLS") ?? 4);
console.log(`past 64, median of ${rounds} rounds x ${calls} calls, ms per append (rows x tokens)`);
console.log("backend dtype " + CELLS.map(([b, t]) => `${b}x${t}`.padStart(8)).join(""));
for (const backend of values.backends.split(",") as ("cpu" | "wasm")[]) {
  for (const dtype of values.dtypes.split(",") as ("fp32" | "q4")[]) {
    const model = await OnnxCausalLM.load(positionals[0], {
      backend,
      dtype,
      numThreads: getBackend(backend).threads === "session" ? 2 : 1, // cpu: its own pool per session
    });
    const ms = await measureLatency(model, CELLS, { past: 64, rounds, calls });
    console.log(
      `${backend.padEnd(7)} ${dtype.padEnd(5)}` +
        CELLS.map(([b, t]) => ms.get(`${b}x${t}`)!.toFixed(1).padStart(8)).join(""),
    );
    await model.dispose();
  }
}
