/**
 * The peers of the real-model benchmarks, autoregressive on cpu: transformers.js 4.3.1
 * `generate()` on the converted SmolLM2 folder (onnxruntime-node), and llama.cpp (node-llama-cpp
 * 3.21.1's prebuilt CPU binary) on the GGUF it was converted from, in a child process with its own
 * lock file (tests/_llama_cpp_oracle.ts, command "generate"). Shared by bench/micro/real_model_bench.ts
 * (`deno task bench`) and bench/real.ts (`deno task bench:real`).
 *
 * @module
 */

import { renderChat } from "../src/generate/chat.ts";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";
import { askLlamaCppOracle, type GenerateReply, type GenerateRequest } from "../tests/_llama_cpp_oracle.ts";
import { SMOLLM2_FOLDER, SMOLLM2_GGUF } from "../tools/model_smollm2.ts";
import { pairedSeed } from "./_harness.ts";

/** One peer's measured throughput. */
export interface PeerResult {
  name: string;
  dtype: string;
  backend: string;
  temperature: number;
  tokensPerSecond: number;
}

/** Runs llama.cpp's "generate" command in the oracle's child process. */
export function askLlamaCpp(request: GenerateRequest): Promise<GenerateReply> {
  return askLlamaCppOracle<GenerateReply>(request);
}

/**
 * Tokens/s of each peer over the given chat prompts (one generation per prompt and temperature,
 * exactly `maxNewTokens` tokens, wall time with the prefill; temperature 0 is greedy): transformers.js fp32 and q8, llama.cpp
 * with `threads` threads and with 1 (ggml's threads spin at every op's barrier, so on a busy 2-core
 * machine 2 threads can collapse; both are reported).
 */
export async function measurePeers(o: {
  prompts: readonly string[];
  maxNewTokens: number;
  temperatures: readonly number[];
  threads: number;
}): Promise<PeerResult[]> {
  const tokenizer = await Tokenizer.fromFile(
    `${SMOLLM2_FOLDER}/tokenizer.json`,
    `${SMOLLM2_FOLDER}/tokenizer_config.json`,
  );
  const prompts = o.prompts.map((content) =>
    tokenizer.encode(renderChat(tokenizer, [{ role: "user", content }])) as number[]
  );
  const results: PeerResult[] = [];
  const { AutoModelForCausalLM, env, Tensor } = await import("@huggingface/transformers");
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = SMOLLM2_FOLDER.slice(0, SMOLLM2_FOLDER.lastIndexOf("/") + 1);
  const folderName = SMOLLM2_FOLDER.slice(SMOLLM2_FOLDER.lastIndexOf("/") + 1);
  for (const dtype of ["fp32", "q8"] as const) {
    const model = await AutoModelForCausalLM.from_pretrained(folderName, {
      dtype,
      device: "cpu",
      session_options: { intraOpNumThreads: o.threads, interOpNumThreads: 1 },
    });
    for (const temperature of o.temperatures) {
      let tokens = 0, ms = 0;
      for (const ids of prompts) {
        const n = ids.length;
        const t0 = performance.now();
        // deno-lint-ignore no-explicit-any
        const output: any = await model.generate({
          input_ids: new Tensor("int64", BigInt64Array.from(ids, BigInt), [1, n]),
          attention_mask: new Tensor("int64", new BigInt64Array(n).fill(1n), [1, n]),
          // T = 0: greedy (transformers.js rejects temperature 0 with sampling on).
          ...(temperature > 0 ? { do_sample: true, temperature, top_k: 0 } : { do_sample: false }),
          max_new_tokens: o.maxNewTokens,
          min_new_tokens: o.maxNewTokens,
        });
        ms += performance.now() - t0;
        tokens += output.dims[1] - n;
      }
      results.push({
        name: "transformers.js 4.3.1 generate()",
        dtype,
        backend: "cpu",
        temperature,
        tokensPerSecond: tokens * 1000 / ms,
      });
    }
    await model.dispose();
  }
  const haveGguf = await Deno.stat(SMOLLM2_GGUF).then(() => true, () => false);
  if (haveGguf) {
    for (const threads of [...new Set([o.threads, 1])]) {
      for (const temperature of o.temperatures) {
        let tokens = 0, ms = 0;
        for (const [i, ids] of prompts.entries()) {
          const reply = await askLlamaCpp({
            command: "generate",
            gguf: SMOLLM2_GGUF,
            ids,
            maxTokens: o.maxNewTokens,
            runs: 1,
            seed: pairedSeed(i, 0, prompts.length),
            temperature,
            threads,
          });
          tokens += reply.runs[0].ids.length;
          ms += reply.runs[0].ms;
        }
        results.push({
          name: `llama.cpp (node-llama-cpp 3.21.1) ${threads} thread${threads > 1 ? "s" : ""}`,
          dtype: "Q4_1 GGUF",
          backend: "cpu",
          temperature,
          tokensPerSecond: tokens * 1000 / ms,
        });
      }
    }
  }
  return results;
}
