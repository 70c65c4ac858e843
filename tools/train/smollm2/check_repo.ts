// The draft through the repo: step latency (OnnxCausalLM, numThreads 1, past 64, 1 row x 1 token;
// cpu = onnxruntime-node, wasm = onnxruntime-web) next to the target's on cpu, and 64-token `sd` and
// `spectr` generations with SpeculativeGenerator.fromPretrained on the real pair (backend cpu).
//   deno run -A tools/train/smollm2/check_repo.ts [--no-latency] [--no-generate]
import { OnnxCausalLM } from "../../../src/model/causal_lm.ts";
import { SpeculativeGenerator } from "../../../mod.ts";
import { measureLatency } from "../../../bench/_latency.ts";

const root = new URL("../../../", import.meta.url).pathname;
const TARGET = `${root}models/smollm2-135m-instruct`, DRAFT = Deno.env.get("DRAFT_DIR") ?? `${root}models/smollm2-draft`;
const ROUNDS = Number(Deno.env.get("ROUNDS") ?? 7);
const out: Record<string, unknown> = {};
if (!Deno.args.includes("--no-latency")) {
  const cells: [number, number][] = [[1, 1], [1, 5]];
  for (const backend of ["cpu", "wasm"] as const) {
    const d = await OnnxCausalLM.load(DRAFT, { backend, numThreads: 1 });
    const ms = await measureLatency(d, cells, { past: 64, rounds: ROUNDS, calls: 20 });
    out[`draft_${backend}_1thread_ms`] = Object.fromEntries(ms);
    await d.dispose();
  }
  for (const backend of ["cpu", "wasm"] as const) {
    const t = await OnnxCausalLM.load(TARGET, { backend, numThreads: 1 });
    out[`target_${backend}_1thread_ms`] = Object.fromEntries(await measureLatency(t, [[1, 1]], { past: 64, rounds: 3, calls: 5 }));
    await t.dispose();
  }
  console.log(JSON.stringify(out));
}
if (!Deno.args.includes("--no-generate")) {
  const gen = await SpeculativeGenerator.fromPretrained({ target: TARGET, draft: DRAFT, backend: "cpu" });
  const chat = { messages: [{ role: "user" as const, content: "Write a short story about a lighthouse keeper who finds a message in a bottle." }] };
  for (const [method, k, L] of [["sd", 1, 4], ["spectr", 2, 4]] as const) {
    const r = await gen.generate(chat, { method, k, draftLength: L, maxNewTokens: 64, seed: 1, temperature: 1 });
    console.log(`${method} k=${k} L=${L}: ${r.tokens.length} tokens, blockEfficiency ${r.stats.blockEfficiency.toFixed(3)}, ` +
      `${r.stats.tokensPerSecond.toFixed(1)} tok/s, finish ${r.finishReason}\n  ${JSON.stringify(r.text.slice(0, 200))}`);
  }
}
