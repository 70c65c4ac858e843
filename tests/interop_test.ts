/**
 * Interop with transformers.js: the bundled model folders (models/target, GPT-2 style; models/draft,
 * Llama style with GQA) load and generate in `@huggingface/transformers` as they are, and its greedy
 * output equals spectr's own.
 *
 * For each folder: transformers.js (`AutoModelForCausalLM` + `AutoTokenizer`, dtype fp32, device
 * "cpu" = onnxruntime-node, local files only, no network) greedily generates 16 new tokens after
 * `[BOS = 1] + ids("Once upon a time")` (ids encoded without special tokens, the folder's convention:
 * the tokenizer.json post-processor would append `<eos>` instead of prepending it, so input_ids are
 * passed explicitly); spectr (`SpeculativeGenerator.fromPretrained({ target: folder, backend: "cpu" })`,
 * method "autoregressive", temperature 0) does the same from the same ids. The token ids must be equal
 * (both stop early at EOS alike). Greedy argmax ties are practically impossible with float32 logits of
 * an 8,192-token vocabulary, and both runtimes run the same graph on onnxruntime-node, so any mismatch
 * is a real difference (wrong position ids, cache handling, BOS, ...), not rounding.
 * Both tokenizers must also encode the prompt alike and decode the generated ids to the same, non-empty,
 * English-looking text.
 *
 * Needs `--allow-read --allow-env --allow-ffi --allow-sys` (onnxruntime-node is a native addon);
 * without them the test is ignored with the reason printed, never passed silently.
 *
 * @module
 */

import assert from "node:assert/strict";
import { SpeculativeGenerator } from "../src/generate/generator.ts";
import { haveModel, modelPath, MODELS_DIR } from "../src/model/_testing.ts";

const PROMPT = "Once upon a time";
/** `<eos>` = 1 is also the BOS of these folders. */
const BOS = 1;
const EOS = 1;
const NEW_TOKENS = 16;

const missing = (["read", "env", "ffi", "sys"] as const).filter((name) =>
  Deno.permissions.querySync({ name }).state !== "granted"
);
const names = (["target", "draft"] as const).filter((name) => haveModel(name));
const reason = missing.length > 0
  ? `transformers.js on onnxruntime-node needs --allow-${missing.join(" --allow-")}, not granted`
  : names.length < 2
  ? "models/target or models/draft is missing"
  : undefined;
if (reason) console.warn(`SKIP: transformers.js interop test ignored: ${reason}`);

Deno.test({
  name: "transformers.js loads both bundled folders and its greedy output equals spectr's",
  ignore: reason !== undefined,
  // onnxruntime-node keeps native handles and the dynamic import loads a large module graph.
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    // Imported here, not at the top: the import itself reads env/sys, which may not be granted.
    // Exact version: transformers.js 4.3.1 depends on onnxruntime-node 1.30.0, the version spectr pins.
    const { AutoModelForCausalLM, AutoTokenizer, env, Tensor } = await import(
      "@huggingface/transformers"
    );
    env.allowRemoteModels = false;
    env.allowLocalModels = true;
    env.localModelPath = MODELS_DIR;

    for (const name of names) {
      await t.step(name, async () => {
        const tokenizer = await AutoTokenizer.from_pretrained(name);
        const model = await AutoModelForCausalLM.from_pretrained(name, { dtype: "fp32", device: "cpu" });
        const spectr = await SpeculativeGenerator.fromPretrained({ target: modelPath(name), backend: "cpu" });
        try {
          const textIds: number[] = tokenizer.encode(PROMPT, { add_special_tokens: false });
          assert.deepEqual(
            spectr.tokenizer.encode(PROMPT),
            textIds,
            "the two tokenizers encode the prompt alike",
          );
          const prompt = [BOS, ...textIds];

          const inputIds = new Tensor("int64", BigInt64Array.from(prompt, BigInt), [1, prompt.length]);
          const attentionMask = new Tensor("int64", new BigInt64Array(prompt.length).fill(1n), [
            1,
            prompt.length,
          ]);
          const output = await model.generate({
            input_ids: inputIds,
            attention_mask: attentionMask,
            max_new_tokens: NEW_TOKENS,
            do_sample: false,
          });
          // Without return_dict_in_generate, generate() returns the [1, prompt + new] ids tensor.
          const row = (output as InstanceType<typeof Tensor>).tolist()[0] as bigint[];
          assert.deepEqual(row.slice(0, prompt.length).map(Number), prompt);
          const theirs = row.slice(prompt.length).map(Number);

          const ours = await spectr.generate(prompt, {
            method: "autoregressive",
            temperature: 0,
            maxNewTokens: NEW_TOKENS,
          });
          assert.deepEqual(ours.tokens, theirs, `${name}: spectr greedy vs transformers.js greedy`);
          assert.ok(
            theirs.length === NEW_TOKENS || theirs.at(-1) === EOS,
            `${name}: ${theirs.length} tokens`,
          );

          const text: string = tokenizer.decode(theirs, { skip_special_tokens: true });
          assert.equal(
            spectr.tokenizer.decode(theirs, { skipSpecialTokens: true, stripPrefixSpace: false }),
            text,
            `${name}: the two tokenizers decode alike`,
          );
          assert.equal(ours.text.trim(), text.trim(), `${name}: generated text`);
          assert.ok(/^[\x20-\x7e\n]+$/.test(text), `${name}: printable ASCII, got ${JSON.stringify(text)}`);
          assert.ok(
            (text.match(/[A-Za-z]{2,}/g) ?? []).length >= 3,
            `${name}: at least 3 words, got ${JSON.stringify(text)}`,
          );
          console.log(`${name}: ${JSON.stringify(PROMPT + text)} ${JSON.stringify(theirs)}`);
        } finally {
          await spectr.dispose();
          await model.dispose();
        }
      });
    }
  },
});
