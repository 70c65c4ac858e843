/**
 * `deno task bench:tree`: tree attention vs row scoring on the real target (SmolLM2-135M-Instruct, fp32 unless `--dtype`,
 * onnxruntime-node):
 * per-call latency after a 64-token past, in the same process, cells interleaved round by round
 * (each round rotated by one cell), median over rounds of the mean of `--calls` calls, each
 * relative to t(1, 1) of the same model.
 *
 * Cells (the tree of n = 1 + rows × 4 nodes is the rows' drafts merged with nothing shared: one
 * pending token, then `rows` drafts of 4 tokens):
 * - `1x1` plain append of 1 token (2D mask on an "any" graph); `tree 1` the same as a one-node
 *   tree (the 4D mask) — plain appends of a 4D-mask graph vs the standard graph, together with
 *   `2d 1x1` (the standard graph given by `--standard`);
 * - `2x5` fork to 2 rows, append 5 tokens each (keep 5), vs `tree 9`: appendTree of 9 nodes;
 * - `4x5` vs `tree 17`.
 * Each is timed as its forward, and with its rollback: `select` to the past + 3 accepted tokens
 * (rows) or `keepTreePath` of a 3-node path (tree, the KV gather).
 *
 * Options: `--folder models/smollm2-135m-instruct`, `--standard <folder with a 2D-mask fp32 graph>`,
 * `--rounds 7`, `--calls 3`, `--threads 2`, `--dtype fp32`. The folder's graph must take a 4D mask
 * (`deno task model:smollm2` builds it so). Prints, asserts nothing. On the harness
 * (bench/_harness.ts): the rounds are its `interleave`; its header line first; the last line is one
 * JSON object `{"header", "folder", "dtype", "threads", "past", "rounds", "calls", "rows": [{cell,
 * forwardMs, withRollbackMs}…]}`.
 *
 * @module
 */

import { OnnxCausalLM } from "../src/model/causal_lm.ts";
import {
  choiceFlag,
  finishBench,
  formatHeader,
  formatTable,
  interleave,
  intFlag,
  machineHeader,
  median,
  PAIRS,
  parseFlags,
  runMain,
} from "./_harness.ts";

const PAST = 64;
const ids = (n: number, salt: number) =>
  Array.from({ length: n }, (_, t) => 3 + ((salt * 104729 + t * 7919) % 40000));

async function main(): Promise<void> {
  const flags = parseFlags("bench:tree", {
    options: {
      folder: { type: "string", default: PAIRS.real.target },
      standard: { type: "string" },
      rounds: { type: "string", default: "7" },
      calls: { type: "string", default: "3" },
      threads: { type: "string", default: "2" },
      dtype: { type: "string", default: "fp32" },
    },
  });
  if (!flags) return;
  const { values } = flags;
  const ROUNDS = intFlag("rounds", values.rounds, 7), CALLS = intFlag("calls", values.calls, 3);
  const THREADS = intFlag("threads", values.threads, 2);
  const DTYPE = choiceFlag("dtype", values.dtype, ["fp32", "q8", "q4"], "fp32");

  const model = await OnnxCausalLM.load(values.folder, { backend: "cpu", dtype: DTYPE, numThreads: THREADS });
  if (!model.supportsTree) {
    console.error(
      `bench:tree: ${values.folder} (${model.file}) takes no 4D attention_mask; rebuild it (deno task model:smollm2) or pass --folder`,
    );
    await model.dispose();
    Deno.exit(1);
  }
  const standard = values.standard
    ? await OnnxCausalLM.load(values.standard, { backend: "cpu", dtype: DTYPE, numThreads: THREADS })
    : undefined;
  if (standard?.supportsTree) console.warn(`bench:tree: --standard ${values.standard} is tree-capable too`);

  const prefix = ids(PAST, 0);
  await model.append([prefix], 1);
  await standard?.append([prefix], 1);

  /** One timed call: [forward ms, forward + rollback ms]; the model is back at PAST afterwards. */
  type Cell = (salt: number) => Promise<[number, number]>;
  const plain = (m: OnnxCausalLM): Cell => async (salt) => {
    const t0 = performance.now();
    await m.append([ids(1, salt)], 1);
    const t1 = performance.now();
    m.select(0, PAST);
    return [t1 - t0, t1 - t0];
  };
  const rows = (r: number): Cell => async (salt) => {
    const t0 = performance.now();
    model.fork(r);
    await model.append(Array.from({ length: r }, (_, i) => ids(5, salt * 8 + i)), 5);
    const t1 = performance.now();
    model.select(r - 1, PAST + 3);
    const t2 = performance.now();
    model.select(0, PAST);
    return [t1 - t0, t2 - t0];
  };
  const tree = (r: number): Cell => async (salt) => {
    // one pending token (node 0), then r drafts of 4 tokens under it
    const tokens = [ids(1, salt)[0]], parents = [-1];
    for (let i = 0; i < r; i++) {
      ids(4, salt * 8 + i).forEach((token, j) => {
        parents.push(j === 0 ? 0 : tokens.length - 1);
        tokens.push(token);
      });
    }
    const last = tokens.length - 4; // the last draft's first node
    const t0 = performance.now();
    await model.appendTree(tokens, parents);
    const t1 = performance.now();
    model.keepTreePath(r === 0 ? [0] : [0, last, last + 1]);
    const t2 = performance.now();
    model.select(0, PAST);
    return [t1 - t0, t2 - t0];
  };

  const cells: [string, Cell][] = [
    ...(standard ? [["2d 1x1", plain(standard)] as [string, Cell]] : []),
    ["1x1", plain(model)],
    ["tree 1", tree(0)],
    ["2x5", rows(2)],
    ["tree 9", tree(2)],
    ["4x5", rows(4)],
    ["tree 17", tree(4)],
  ];

  const header = machineHeader("bench:tree");
  console.log(formatHeader(header));
  console.log(
    `${values.folder} ${DTYPE} cpu, ${THREADS} threads, past ${PAST}, ${ROUNDS} rounds × ${CALLS} calls`,
  );
  for (const [, cell] of cells) await cell(0); // warm-up
  let salt = 1;
  // each round starts one cell later, so no cell always follows the same one
  const samples = await interleave(cells, ROUNDS, async ([, cell]) => {
    let forward = 0, total = 0;
    for (let c = 0; c < CALLS; c++) {
      const [f, t] = await cell(salt++);
      forward += f;
      total += t;
    }
    return [forward / CALLS, total / CALLS] as const;
  });
  const table = cells.map(([name], i) => ({
    cell: name,
    forwardMs: median(samples[i].map((x) => x[0])),
    withRollbackMs: median(samples[i].map((x) => x[1])),
  }));
  const base = table.find((r) => r.cell === "1x1")!.forwardMs;
  type Row = (typeof table)[number];
  console.log(formatTable<Row>([
    { header: "cell", value: "cell" },
    {
      header: "forward ms (÷ 1x1)",
      value: (r) => `${r.forwardMs.toFixed(1)} (${(r.forwardMs / base).toFixed(2)})`,
      align: "right",
    },
    {
      header: "with rollback / gather ms (÷ 1x1)",
      value: (r) => `${r.withRollbackMs.toFixed(1)} (${(r.withRollbackMs / base).toFixed(2)})`,
      align: "right",
    },
  ], table));
  await model.dispose();
  await standard?.dispose();
  finishBench(header, {
    folder: values.folder,
    dtype: DTYPE,
    threads: THREADS,
    past: PAST,
    rounds: ROUNDS,
    calls: CALLS,
    rows: table,
  });
}

if (import.meta.main) await runMain(main);
