/**
 * One-off measurement behind the thresholds of tests/llama_cpp_parity_test.ts: on the test's fixed passages,
 * the teacher-forced next-token distributions of
 *
 * - llama.cpp (node-llama-cpp 3.21.1's CPU binary, through tests/_llama_cpp_oracle.ts), the reference;
 * - a second fp32 route: tools/parity/numpy_llama.py (gguf-py dequantization + a NumPy float64 forward on
 *   the GGUF layout), independent of src/convert/;
 * - our ONNX graphs fp32 and q4 (onnxruntime-node, cpu);
 * - the power check's wrong conversion (RoPE base 10000 instead of the GGUF's 100000);
 *
 * compared pairwise: top-1 agreement and mean / p95 / max KL(reference ‖ candidate) over the whole
 * vocabulary. Prints a table for the test's header comment.
 *
 * Run (needs `pip install gguf numpy` in the python given, e.g. a venv):
 *   deno run --allow-read --allow-env --allow-ffi --allow-sys --allow-run --allow-write=/tmp \
 *     tools/parity/measure_spread.ts [--python=/tmp/parity-venv/bin/python] [--threads=1]
 *
 * Measured on the dev machine: see the table in tests/llama_cpp_parity_test.ts (the same with
 * --threads=1 and --threads=2). It takes 1–3 minutes (the NumPy forward ~15–25 s).
 *
 * @module
 */

import { parseArgs } from "node:util";
import { SMOLLM2_FOLDER, SMOLLM2_GGUF } from "../model_smollm2.ts";
import { OnnxCausalLM } from "../../src/model/causal_lm.ts";
import { Tokenizer } from "../../src/tokenizer/tokenizer.ts";
import {
  type Agreement,
  agreement,
  askLlamaCppDistributions,
  fromLogits,
  fromProbabilities,
  passages,
  showAgreement,
  teacherForced,
  wrongRopeFolder,
} from "../../tests/llama_cpp_parity_test.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { python: { type: "string", default: "python3" }, threads: { type: "string", default: "1" } },
});

const tokenizer = await Tokenizer.fromFile(
  `${SMOLLM2_FOLDER}/tokenizer.json`,
  `${SMOLLM2_FOLDER}/tokenizer_config.json`,
);
const list = passages(tokenizer);
const positions = list.reduce((a, p) => a + p.ids.length, 0);
const V = 49152;
console.log(`passages: ${list.map((p) => `${p.name} ${p.ids.length}`).join(", ")}; ${positions} positions`);

let at = performance.now();
const llama = await askLlamaCppDistributions({
  gguf: SMOLLM2_GGUF,
  passages: list.map((p) => p.ids),
  vocabSize: V,
  threads: Number(values.threads),
});
console.log(`llama.cpp: ${(llama.ms / 1000).toFixed(1)} s`, JSON.stringify(llama.reply));

// The second fp32 route.
at = performance.now();
const numpyOut = await Deno.makeTempFile({ dir: "/tmp", prefix: "spectr-numpy-logits-", suffix: ".f32" });
let numpy: Float32Array;
try {
  const child = new Deno.Command(values.python!, {
    args: [new URL("./numpy_llama.py", import.meta.url).pathname],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(
    new TextEncoder().encode(
      JSON.stringify({ gguf: SMOLLM2_GGUF, passages: list.map((p) => p.ids), out: numpyOut }),
    ),
  );
  await writer.close();
  const { code, stdout } = await child.output();
  if (code !== 0) throw new Error(`numpy_llama.py failed (exit ${code})`);
  console.log(
    `numpy: ${((performance.now() - at) / 1000).toFixed(1)} s`,
    new TextDecoder().decode(stdout).trim(),
  );
  const bytes = await Deno.readFile(numpyOut);
  numpy = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
} finally {
  await Deno.remove(numpyOut);
}

const ours: Record<string, Float32Array> = {};
for (const dtype of ["fp32", "q4"] as const) {
  at = performance.now();
  const model = await OnnxCausalLM.load(SMOLLM2_FOLDER, { backend: "cpu", dtype, numThreads: 2 });
  ours[dtype] = await teacherForced(model, list);
  await model.dispose();
  console.log(`ours ${dtype}: ${((performance.now() - at) / 1000).toFixed(1)} s`);
}
at = performance.now();
{
  const model = await OnnxCausalLM.load(await wrongRopeFolder(SMOLLM2_FOLDER, 100000, 10000, 64), {
    backend: "cpu",
    dtype: "fp32",
    numThreads: 2,
  });
  ours["wrong rope (10000)"] = await teacherForced(model, list);
  await model.dispose();
  console.log(`wrong rope: ${((performance.now() - at) / 1000).toFixed(1)} s`);
}

const L = fromProbabilities(llama.probabilities, V);
const N = fromLogits(numpy, V);
const rows: [string, Agreement][] = [
  ["numpy fp32 vs llama.cpp", agreement(L, N, positions)],
  ["ours fp32 vs llama.cpp", agreement(L, fromLogits(ours.fp32, V), positions)],
  ["ours q4 vs llama.cpp", agreement(L, fromLogits(ours.q4, V), positions)],
  ["wrong rope vs llama.cpp", agreement(L, fromLogits(ours["wrong rope (10000)"], V), positions)],
  ["ours fp32 vs numpy", agreement(N, fromLogits(ours.fp32, V), positions)],
  ["ours q4 vs numpy", agreement(N, fromLogits(ours.q4, V), positions)],
  ["ours q4 vs ours fp32", agreement(fromLogits(ours.fp32, V), fromLogits(ours.q4, V), positions)],
  ["wrong rope vs numpy", agreement(N, fromLogits(ours["wrong rope (10000)"], V), positions)],
];
for (const [what, a] of rows) console.log(showAgreement(what, a));
// Per passage, ours fp32 and numpy against llama.cpp.
let from = 0;
for (const p of list) {
  const slice = (rows: (t: number) => Float64Array) => (t: number) => rows(from + t);
  for (const [what, cand] of [["numpy", N], ["ours fp32", fromLogits(ours.fp32, V)]] as const) {
    console.log(`  ${p.name}: ${showAgreement(what, agreement(slice(L), slice(cand), p.ids.length))}`);
  }
  from += p.ids.length;
}
let maxAbs = 0;
for (let i = 0; i < numpy.length; i++) maxAbs = Math.max(maxAbs, Math.abs(numpy[i] - ours.fp32[i]));
console.log(`max |logit(ours fp32) − logit(numpy)| = ${maxAbs.toExponential(2)}`);
Deno.exit(0);
