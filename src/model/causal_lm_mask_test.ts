// Rollback by masking in OnnxCausalLM: on graphs whose attention_mask takes a 4D mask ("any",
// "4d"), select and keepTreePath leave the dropped positions in the cache, masked, and compact
// after 32 of them. Every forward must still compute what a fresh forward of the row's tokens
// computes: after long random runs of appends, rejections (select), tree paths (appendTree /
// keepTreePath), forks (a copying select) and the compactions they trigger, the next-token logits
// equal a fresh model's within TOL = 1e-4 (fp32; tree_test.ts gives the float32 reordering noise,
// ~4e-6). A "2d" graph (copying crops) runs the same schedule as a control.
import assert from "node:assert/strict";
import { join } from "node:path";
import { OnnxCausalLM } from "./causal_lm.ts";
import { maxAbsDiff } from "./_testing.ts";
import { type AttentionMaskForm, convertGgufToOnnx } from "../convert/mod.ts";
import { minimalConfig, TINY, tinyLlamaGguf } from "../convert/_testing.ts";
import { Random } from "../random.ts";

const TOL = 1e-4;
/** A wrong mask or position moves the logits by more than this (the power check). */
const WRONG = 1e-2;
const V = TINY.vocab;
const PROMPT = [1, 5, 9, 13, 20, 33, 7];

async function tiny(mask: AttentionMaskForm): Promise<{ dir: string; folder: string }> {
  const dir = await Deno.makeTempDir({ prefix: `spectr-mask-${mask}-` });
  const folder = join(dir, "tiny");
  await convertGgufToOnnx(tinyLlamaGguf(), folder, {
    dtypes: ["fp32"],
    attentionMask: mask,
    writeExtras: ({ folder, file }) =>
      Deno.writeTextFile(join(folder, "config.json"), JSON.stringify(minimalConfig(file))),
  });
  return { dir, folder };
}

/** Next-token logits after `tokens`, from a fresh forward. */
async function fresh(model: OnnxCausalLM, tokens: number[], probe: number): Promise<Float32Array> {
  model.reset();
  return await model.append([[...tokens, probe]], 1);
}

/**
 * Runs a random schedule on `model`, tracking the row's tokens; after each operation, appends a
 * probe token, compares its logits with `oracle`'s fresh forward, and rejects the probe again.
 * Returns the worst difference and how many positions were dropped in all.
 */
async function schedule(
  model: OnnxCausalLM,
  oracle: OnnxCausalLM,
  seed: number,
  steps: number,
): Promise<{ worst: number; dropped: number }> {
  const random = new Random(seed);
  const pick = (n: number) => Math.floor(random.next() * n);
  let tokens = [...PROMPT];
  let worst = 0, dropped = 0;
  model.reset();
  await model.append([tokens], 1);
  for (let step = 0; step < steps; step++) {
    if (tokens.length > TINY.ctx - 12) {
      dropped += tokens.length - PROMPT.length;
      tokens = tokens.slice(0, PROMPT.length);
      model.select(0, tokens.length); // a long rejection
    }
    const op = pick(4);
    if (op === 0 || op === 1) {
      // a block: t tokens scored, r of them rejected
      const t = 1 + pick(4), r = pick(t + 1);
      const fed = Array.from({ length: t }, () => pick(V));
      await model.append([fed], t);
      tokens.push(...fed.slice(0, t - r));
      model.select(0, tokens.length);
      dropped += r;
    } else if (op === 2 && model.supportsTree) {
      // a tree of pending + two drafts; keep a random root-to-node chain
      const a = pick(V), b = pick(V), c = pick(V), d = pick(V);
      const nodes = [a, b, c, d], parents = [-1, 0, 1, 0];
      await model.appendTree(nodes, parents);
      const chains = [[], [0], [0, 1], [0, 1, 2], [0, 3]];
      const chain = chains[pick(chains.length)];
      model.keepTreePath(chain);
      tokens.push(...chain.map((i) => nodes[i]));
      dropped += nodes.length - chain.length;
    } else {
      // two rows, then keep one of them cut (a copying select)
      const x = [pick(V), pick(V)], y = [pick(V), pick(V)];
      model.fork(2);
      await model.append([x, y], 2);
      const row = pick(2), keep = pick(3);
      tokens.push(...[x, y][row].slice(0, keep));
      model.select(row, tokens.length);
      dropped += 2 - keep;
    }
    assert.equal(model.length, tokens.length);
    const probe = pick(V);
    const got = await model.append([[probe]], 1);
    model.select(0, tokens.length);
    dropped++;
    const want = await fresh(oracle, tokens, probe);
    worst = Math.max(worst, maxAbsDiff(got, want));
  }
  return { worst, dropped };
}

for (const mask of ["any", "4d", "2d"] as const) {
  Deno.test(`select and keepTreePath on a "${mask}" graph leave every later forward equal to a fresh one, across many rejections and compactions`, async () => {
    const { dir, folder } = await tiny(mask);
    const model = await OnnxCausalLM.load(folder, { backend: "wasm", dtype: "fp32", numThreads: 1 });
    const oracle = await OnnxCausalLM.load(folder, { backend: "wasm", dtype: "fp32", numThreads: 1 });
    try {
      for (const seed of [1, 2, 3]) {
        const { worst, dropped } = await schedule(model, oracle, seed, 60);
        assert.ok(worst < TOL, `seed ${seed}: worst |Δlogit| ${worst} ≥ ${TOL}`);
        // well past the 32 masked positions that trigger a compaction, several times over
        assert.ok(dropped > 4 * 32, `seed ${seed}: only ${dropped} positions dropped`);
      }
    } finally {
      await model.dispose();
      await oracle.dispose();
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("a masked cache differs from the fresh forward when the masked positions were visible (power check)", async () => {
  // The same tokens with rejected positions left visible (a plain append of them, never selected
  // away) must not match: the schedule's equality is not vacuous.
  const { dir, folder } = await tiny("any");
  const model = await OnnxCausalLM.load(folder, { backend: "wasm", dtype: "fp32", numThreads: 1 });
  try {
    await model.append([[...PROMPT, 11, 12]], 1);
    model.select(0, PROMPT.length); // 11 12 masked
    const masked = await model.append([[3]], 1);
    model.reset();
    await model.append([[...PROMPT, 11, 12]], 1);
    const visible = await model.append([[3]], 1); // 11 12 seen
    const want = await fresh(model, PROMPT, 3);
    assert.ok(maxAbsDiff(masked, want) < TOL);
    assert.ok(maxAbsDiff(visible, want) > WRONG);
  } finally {
    await model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});
