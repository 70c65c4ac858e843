import assert from "node:assert/strict";
import { HfTokenizer } from "./_hf.ts";
import { StreamingDetokenizer } from "./stream.ts";
import { Tokenizer } from "./tokenizer.ts";
import { gpt2Tokenizer, sampleLines, tinyStoriesTokenizer } from "./_test_data.ts";

const TEXTS = [
  "🙂",
  "café",
  "日本語",
  "Ångström",
  'Lily said: "café au lait 🙂" and 日本語 — naïve 👍🏽 🇯🇵 ok.',
  "emoji run 🙂🙂🙂 then ñ and 中文字 at the end 👍",
];

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** mulberry32: a small seeded generator, so chunkings are reproducible. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Pushes `ids` in the given chunk sizes and checks every piece; returns the pieces plus flush. */
function streamChunks(
  tokenizer: Tokenizer,
  ids: number[],
  sizes: number[],
  skipSpecialTokens = false,
): string[] {
  const stream = new StreamingDetokenizer(tokenizer, { skipSpecialTokens });
  const pieces: string[] = [];
  let at = 0;
  for (const size of sizes) {
    const piece = stream.push(ids.slice(at, at + size));
    at += size;
    assert.ok(!piece.includes("\uFFFD"), `U+FFFD in piece ${JSON.stringify(piece)}`);
    assert.ok(!LONE_SURROGATE.test(piece), `lone surrogate in piece ${JSON.stringify(piece)}`);
    // Emitted no later than final: all text so far is the prefix decode minus only a cut trailing character.
    const soFar = tokenizer.decode(ids.slice(0, at), { skipSpecialTokens, stripPrefixSpace: false });
    assert.equal(pieces.join("") + piece, soFar.replace(/\uFFFD$/, ""));
    pieces.push(piece);
  }
  assert.equal(at, ids.length);
  pieces.push(stream.flush());
  return pieces;
}

Deno.test("GPT-2 splits the multi-byte test characters across byte tokens", async () => {
  const gpt2 = await gpt2Tokenizer();
  const fatal = new TextDecoder("utf-8", { fatal: true });
  // ("café" keeps "é" = c3 a9 in one token; "Å" of "Ångström" is cut into c3 | 85.)
  for (const text of ["🙂", "Ångström", "日本語"]) {
    const ids = gpt2.encode(text);
    const broken = ids.filter((id) => {
      try {
        fatal.decode(gpt2.tokenBytes(id));
        return false;
      } catch {
        return true;
      }
    });
    assert.ok(broken.length > 0, `${text}: every token is whole UTF-8`);
  }
});

Deno.test("pushing GPT-2 ids one at a time concatenates to decode(ids) without broken characters", async () => {
  const gpt2 = await gpt2Tokenizer();
  for (const text of TEXTS) {
    const ids = gpt2.encode(text);
    const pieces = streamChunks(gpt2, ids, ids.map(() => 1));
    assert.equal(pieces.join(""), gpt2.decode(ids));
    assert.equal(pieces.join(""), text);
  }
});

Deno.test("pushing GPT-2 ids in seeded random chunk sizes concatenates to decode(ids)", async () => {
  const gpt2 = await gpt2Tokenizer();
  for (let seed = 1; seed <= 40; seed++) {
    const random = rng(seed);
    for (const text of TEXTS) {
      const ids = gpt2.encode(text);
      const sizes: number[] = [];
      for (let left = ids.length; left > 0;) {
        const size = Math.min(left, Math.floor(random() * 5)); // 0-sized pushes included
        sizes.push(size);
        left -= size;
      }
      assert.equal(streamChunks(gpt2, ids, sizes).join(""), gpt2.decode(ids));
    }
  }
});

Deno.test('text is emitted as soon as it is final: after the tokens of "hello world", "hello" is out', async () => {
  const gpt2 = await gpt2Tokenizer();
  const stream = new StreamingDetokenizer(gpt2);
  const ids = gpt2.encode("hello world");
  assert.deepEqual(ids.map((id) => gpt2.idToToken(id)), ["hello", "Ġworld"]);
  assert.equal(stream.push([ids[0]]), "hello");
  assert.equal(stream.push([ids[1]]), " world");
  // Half of an emoji holds nothing back that is already final, and emits the emoji once complete.
  const emoji = gpt2.encode("!🙂");
  assert.equal(stream.push(emoji.slice(0, -1)), "!");
  assert.equal(stream.push(emoji.slice(-1)), "🙂");
  assert.equal(stream.flush(), "");
});

Deno.test("streaming TinyStories lines with the 8k tokenizer matches decode, with and without the prefix space", async () => {
  const tiny = await tinyStoriesTokenizer();
  for (const line of await sampleLines(100)) {
    const ids = tiny.encode(line, { addSpecialTokens: true }); // ends in <eos>
    const continuation = new StreamingDetokenizer(tiny);
    const text = ids.map((id) => continuation.push([id])).join("") + continuation.flush();
    assert.equal(text, tiny.decode(ids, { stripPrefixSpace: false }));
    const whole = new StreamingDetokenizer(tiny, { stripPrefixSpace: true, skipSpecialTokens: true });
    assert.equal(whole.push(ids) + whole.flush(), tiny.decode(ids, { skipSpecialTokens: true }));
  }
});

Deno.test("skipSpecialTokens drops <|endoftext|> from the stream and keeps it by default", async () => {
  const gpt2 = await gpt2Tokenizer();
  const ids = [...gpt2.encode("The end 🙂"), 50256, ...gpt2.encode(" Next")];
  assert.equal(streamChunks(gpt2, ids, ids.map(() => 1), true).join(""), "The end 🙂 Next");
  assert.equal(streamChunks(gpt2, ids, ids.map(() => 1)).join(""), "The end 🙂<|endoftext|> Next");
});

Deno.test("flush returns a cut character as U+FFFD like decode, and resets the stream", async () => {
  const gpt2 = await gpt2Tokenizer();
  const ids = gpt2.encode("a🙂");
  const cut = ids.slice(0, -1);
  const stream = new StreamingDetokenizer(gpt2);
  const text = stream.push(cut) + stream.flush();
  assert.equal(text, gpt2.decode(cut));
  assert.ok(text.endsWith("\uFFFD"));
  assert.equal(stream.push(ids) + stream.flush(), "a🙂");
});

Deno.test("bad ids to push are typed errors, consume nothing, and the stream continues", async () => {
  const gpt2 = await gpt2Tokenizer();
  const ids = gpt2.encode("x🙂");
  const stream = new StreamingDetokenizer(gpt2);
  let text = stream.push(ids.slice(0, 2));
  assert.throws(() => stream.push([ids[2], 1.5]), {
    name: "TypeError",
    message: "Cannot push ids: id at index 1 is not an integer, got 1.5",
  });
  assert.throws(() => stream.push([ids[2], 50257]), {
    name: "RangeError",
    message: "Cannot push ids: id at index 1 is outside [0, 50257), got 50257",
  });
  assert.throws(() => stream.push([-3]), RangeError);
  assert.throws(() => stream.push("12" as unknown as number[]), TypeError);
  text += stream.push(ids.slice(2)) + stream.flush();
  assert.equal(text, "x🙂");
});

Deno.test("sentencepiece-style tokenizers stream <0xNN> byte-fallback tokens into whole characters", () => {
  const vocab: Record<string, number> = { "<unk>": 0, "<s>": 1, "</s>": 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`] = 3 + b;
  vocab["▁hi"] = 259;
  vocab["▁"] = 260;
  const json = {
    model: { type: "BPE", vocab, merges: [], byte_fallback: true, unk_token: "<unk>", fuse_unk: true },
    added_tokens: [0, 1, 2].map((id) => ({ id, content: ["<unk>", "<s>", "</s>"][id], special: true })),
    decoder: {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        { type: "Strip", content: " ", start: 1, stop: 0 },
      ],
    },
  };
  const tokenizer = Tokenizer.fromJSON(json);
  assert.equal(tokenizer.addsPrefixSpace, true);
  const emoji = [...new TextEncoder().encode("🙂")].map((b) => 3 + b);
  const ids = [1, 259, 260, ...emoji, 2];
  const expected = new HfTokenizer(
    { normalizer: null, pre_tokenizer: null, post_processor: null, ...json },
    {},
  )
    .decode(ids, { skip_special_tokens: true, clean_up_tokenization_spaces: false });
  assert.equal(expected, "hi 🙂");
  assert.equal(tokenizer.decode(ids, { skipSpecialTokens: true }), expected);
  const stream = new StreamingDetokenizer(tokenizer, { skipSpecialTokens: true, stripPrefixSpace: true });
  const pieces = ids.map((id) => stream.push([id]));
  assert.deepEqual(pieces, ["", "hi", " ", "", "", "", "🙂", ""]);
  assert.equal(stream.flush(), "");
});

Deno.test("a long TinyStories stream pushed one token at a time matches decode", async () => {
  const gpt2 = await gpt2Tokenizer();
  const text = (await sampleLines(150)).join("\n") + "\n日本語 🙂 Ångström";
  const ids = gpt2.encode(text);
  assert.ok(ids.length > 5000, `only ${ids.length} ids`);
  const stream = new StreamingDetokenizer(gpt2);
  let out = "";
  for (const id of ids) out += stream.push([id]);
  assert.equal(out + stream.flush(), text);
});
