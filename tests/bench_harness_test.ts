/**
 * The pure parts of the bench harness (bench/_harness.ts) do what its documentation says.
 *
 * What it proves: the table printer pads every column to its widest cell (numbers right-aligned,
 * text left-aligned, the markdown rule marking right-aligned columns) and formats numbers by column
 * (digits, scale, suffix, "—" for null and non-finite); the flag helpers return the value or the
 * fallback, and reject bad input with a FlagError — a RangeError naming the flag and the value given;
 * paired seeds are 1 + round · prompts + prompt: the same for every method of a round, different for
 * every (prompt, round); `interleave` runs every method exactly once per round, in an order rotated
 * left by one each round (or the listed order with `rotate: false`) and files each sample under its
 * method and round; the matrix expands pairs × backends × dtypes in that order and reports each
 * skipped cell with the first rule's reason; the result JSON is one line. Expected values are worked
 * out from those specifications, not taken from running the code. Each checking helper has a power
 * check: a deliberately wrong table, flag parser, seed function or interleaver is rejected by the same
 * helper, so the assertions can fail.
 *
 * It does not prove anything about the benches' measurements, timings or models.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  choiceFlag,
  choiceListFlag,
  type Column,
  cpuModelOf,
  expandMatrix,
  FlagError,
  formatHeader,
  formatTable,
  interleave,
  intFlag,
  intListFlag,
  listFlag,
  type MachineHeader,
  median,
  missingFiles,
  numberFlag,
  numberListFlag,
  pairedSeed,
  type PairSpec,
  parseFlags,
  resultJson,
  roundOrder,
  RunTotals,
} from "../bench/_harness.ts";
import type { DecodeStats } from "../decode.ts";

// ---------------------------------------------------------------------------------------------------
// The table printer

/**
 * Every line of a markdown table has its `|` separators at the same columns: what "aligned" means.
 * Throws otherwise.
 */
function assertAligned(table: string): void {
  const lines = table.split("\n");
  const bars = (line: string) => [...line].flatMap((ch, i) => (ch === "|" ? [i] : []));
  const first = bars(lines[0]);
  for (const line of lines) assert.deepEqual(bars(line), first, `misaligned line ${JSON.stringify(line)}`);
}

interface Row {
  name: string;
  tps: number;
  ratio: number | null;
  share: number;
}

const COLUMNS: Column<Row>[] = [
  { header: "name", value: "name" },
  { header: "tokens/s", value: "tps", digits: 1 },
  { header: "vs AR", value: "ratio", digits: 2, suffix: "x" },
  { header: "drafted", value: "share", digits: 0, scale: 100, suffix: "%" },
];
const ROWS: Row[] = [
  { name: "autoregressive", tps: 12.345, ratio: 1, share: 0.5 },
  { name: "sd L=2", tps: 3, ratio: NaN, share: 0.123 },
  { name: "x", tps: 100.06, ratio: null, share: 1 },
];

Deno.test("formatTable pads every column to its widest cell, numbers right, text left", () => {
  // Widths: name = "autoregressive" (14); tokens/s = the header (8); vs AR = "1.00x" and the header
  // (5); drafted = the header (7). Number columns right-aligned ("---:" in the rule), text left.
  const expected = [
    "| name           | tokens/s | vs AR | drafted |",
    "| -------------- | -------: | ----: | ------: |",
    "| autoregressive |     12.3 | 1.00x |     50% |",
    "| sd L=2         |      3.0 |     — |     12% |",
    "| x              |    100.1 |     — |    100% |",
  ].join("\n");
  const table = formatTable(COLUMNS, ROWS);
  assert.equal(table, expected);
  assertAligned(table);
});

Deno.test("formatTable formats numbers by column: digits, scale, suffix; a function value; explicit alignment", () => {
  const table = formatTable<{ a: number; b: string }>([
    { header: "a²", value: (r) => r.a * r.a, digits: 3 },
    { header: "b", value: "b", align: "right" },
    { header: "raw", value: "a" },
    { header: "flag", value: (r) => r.a > 1 },
  ], [{ a: 1.5, b: "left?" }, { a: 0.5, b: "no" }]);
  assert.equal(
    table,
    [
      "|    a² |     b | raw | flag |", // a header takes its column's alignment
      "| ----: | ----: | --- | ---- |",
      "| 2.250 | left? | 1.5 | yes  |",
      "| 0.250 |    no | 0.5 | no   |",
    ].join("\n"),
  );
  assertAligned(table);
});

Deno.test("power check: assertAligned rejects a table whose columns are not padded", () => {
  const unpadded = ["| name | tokens/s |", "| --- | ---: |", "| autoregressive | 12.3 |"].join("\n");
  assert.throws(() => assertAligned(unpadded), assert.AssertionError);
  // and a printer that forgets one row's padding
  const lines = formatTable(COLUMNS, ROWS).split("\n");
  lines[2] = lines[2].replace(/ +\|$/, " |").replace("autoregressive ", "autoregressive");
  assert.throws(() => assertAligned(lines.join("\n")), assert.AssertionError);
});

// ---------------------------------------------------------------------------------------------------
// Flags

/** `f` throws a FlagError, which is a RangeError, for `flag` and `value`, and its message names both. */
function assertFlagError(f: () => unknown, flag: string, value: string): void {
  let caught: unknown;
  try {
    f();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof RangeError, `a RangeError, got ${caught}`);
  assert.ok(caught instanceof FlagError, `a FlagError, got ${caught}`);
  assert.equal(caught.flag, flag);
  assert.equal(caught.value, value);
  assert.ok(caught.message.includes(`--${flag}`), `the message names --${flag}: ${caught.message}`);
  assert.ok(caught.message.includes(value), `the message names ${JSON.stringify(value)}: ${caught.message}`);
}

Deno.test("flag helpers return the fallback when absent and the parsed value when valid", () => {
  assert.equal(intFlag("tokens", undefined, 128), 128);
  assert.equal(intFlag("tokens", "48", 128), 48);
  assert.equal(intFlag("seed", "0", 1, { min: 0 }), 0);
  assert.equal(numberFlag("temperature", "0.7", 1), 0.7);
  assert.deepEqual(listFlag("backends", " cpu, wasm ,,", ["x"]), ["cpu", "wasm"]);
  assert.deepEqual(listFlag("backends", undefined, ["cpu"]), ["cpu"]);
  assert.deepEqual(intListFlag("lengths", "4,8", [4]), [4, 8]);
  assert.deepEqual(numberListFlag("temperatures", "1,0.7", [1]), [1, 0.7]);
  assert.equal(choiceFlag("dtype", "fp32", ["q8", "fp32"], "q8"), "fp32");
  assert.equal(choiceFlag("dtype", undefined, ["q8", "fp32"], "q8"), "q8");
  assert.deepEqual(choiceListFlag("pairs", "real,toy", ["toy", "real"], []), ["real", "toy"]);
});

Deno.test("flag helpers reject bad input with a RangeError naming the flag and the value", () => {
  assertFlagError(() => intFlag("tokens", "abc", 1), "tokens", "abc");
  assertFlagError(() => intFlag("tokens", "1.5", 1), "tokens", "1.5");
  assertFlagError(() => intFlag("tokens", "0", 1), "tokens", "0"); // below the default minimum 1
  assertFlagError(() => intFlag("tokens", "", 1), "tokens", "");
  assertFlagError(() => intFlag("prompts", "6", 3, { max: 5 }), "prompts", "6");
  assertFlagError(() => numberFlag("temperature", "hot", 1), "temperature", "hot");
  assertFlagError(() => numberFlag("temperature", "Infinity", 1), "temperature", "Infinity");
  assertFlagError(() => numberFlag("temperature", "-1", 1, { min: 0 }), "temperature", "-1");
  assertFlagError(() => listFlag("backends", " , ", []), "backends", " , ");
  assertFlagError(() => intListFlag("lengths", "4,x", []), "lengths", "4,x");
  assertFlagError(() => numberListFlag("temperatures", "1,,nope", []), "temperatures", "1,,nope");
  assertFlagError(() => choiceFlag("dtype", "q5", ["q8", "fp32"], "q8"), "dtype", "q5");
  assertFlagError(() => choiceListFlag("pairs", "toy,big", ["toy", "real"], []), "pairs", "toy,big");
});

Deno.test("parseFlags: an unknown flag or a missing value is a FlagError naming the flag; --help returns undefined", () => {
  const config = {
    options: { tokens: { type: "string" }, quick: { type: "boolean", default: false } },
  } as const;
  const parsed = parseFlags("bench:test", config, ["--tokens", "8", "--quick"]);
  assert.deepEqual({ ...parsed?.values }, { tokens: "8", quick: true });
  assertFlagError(() => parseFlags("bench:test", config, ["--bogus"]), "bogus", "--bogus");
  assertFlagError(() => parseFlags("bench:test", config, ["--tokens"]), "tokens", "--tokens");
  const log = console.log;
  const printed: string[] = [];
  console.log = (...xs: unknown[]) => void printed.push(xs.join(" "));
  try {
    assert.equal(parseFlags("bench:test", config, ["--help"]), undefined);
  } finally {
    console.log = log;
  }
  assert.ok(printed.join("\n").includes("--tokens <value>"), "the usage lists --tokens");
  assert.ok(printed.join("\n").includes("--quick"), "the usage lists --quick");
});

Deno.test("power check: assertFlagError rejects a parser that crashes with another error or forgets the value", () => {
  const crashes = (raw: string) => {
    if (Number.isNaN(Number(raw))) throw new TypeError("Cannot read properties of undefined");
    return Number(raw);
  };
  assert.throws(() => assertFlagError(() => crashes("abc"), "tokens", "abc"), assert.AssertionError);
  const vague = () => {
    throw new FlagError("tokens", "abc", "an integer", "bad flag");
  };
  assert.throws(() => assertFlagError(vague, "tokens", "abc"), assert.AssertionError);
  const accepts = () => intFlag("tokens", "12", 1);
  assert.throws(() => assertFlagError(accepts, "tokens", "12"), assert.AssertionError);
});

// ---------------------------------------------------------------------------------------------------
// Paired seeds

/**
 * A seed function `seedOf(method, prompt, round)` is paired: every method of a (prompt, round) gets
 * the same seed, and no two (prompt, round) share one. Throws otherwise.
 */
function assertPairedSeeds(
  seedOf: (method: number, prompt: number, round: number) => number,
  methods: number,
  prompts: number,
  rounds: number,
): void {
  const seen = new Map<number, string>();
  for (let round = 0; round < rounds; round++) {
    for (let prompt = 0; prompt < prompts; prompt++) {
      const seeds = Array.from({ length: methods }, (_, m) => seedOf(m, prompt, round));
      assert.ok(seeds.every((s) => s === seeds[0]), `prompt ${prompt}, round ${round}: seeds ${seeds}`);
      const where = `prompt ${prompt}, round ${round}`;
      assert.ok(!seen.has(seeds[0]), `seed ${seeds[0]} of ${where} already used by ${seen.get(seeds[0])}`);
      seen.set(seeds[0], where);
    }
  }
}

Deno.test("pairedSeed is 1 + round · prompts + prompt: paired across methods, distinct across prompts and rounds", () => {
  assert.equal(pairedSeed(0, 0, 5), 1);
  assert.equal(pairedSeed(4, 0, 5), 5); // round 0: seeds 1..prompts, as bench:real and bench:auto use
  assert.equal(pairedSeed(0, 2, 1), 3); // one prompt: seed round + 1, as bench:lookup uses
  assert.equal(pairedSeed(1, 2, 3), 8);
  assertPairedSeeds((_method, prompt, round) => pairedSeed(prompt, round, 3), 4, 3, 5);
  for (const [p, r, n] of [[3, 0, 3], [-1, 0, 3], [0, -1, 3], [0.5, 0, 3], [0, 0, 0]]) {
    assert.throws(() => pairedSeed(p, r, n), RangeError);
  }
});

Deno.test("pairedSeed through interleave: every method of a round runs on the round's seed", async () => {
  const seeds = await interleave(["a", "b", "c"], 4, (_m, round) => Promise.resolve(pairedSeed(0, round, 1)));
  for (let round = 0; round < 4; round++) {
    assert.deepEqual(seeds.map((s) => s[round]), [1, 2, 3].fill(round + 1));
  }
});

Deno.test("power check: assertPairedSeeds rejects a seed per method and a seed that ignores the round", () => {
  const perMethod = (m: number, p: number, r: number) => pairedSeed(p, r, 3) + 100 * m;
  assert.throws(() => assertPairedSeeds(perMethod, 4, 3, 5), assert.AssertionError);
  const ignoresRound = (_m: number, p: number) => p + 1;
  assert.throws(() => assertPairedSeeds(ignoresRound, 4, 3, 5), assert.AssertionError);
  const collides = (_m: number, p: number, r: number) => p + r; // (1, 0) and (0, 1) share
  assert.throws(() => assertPairedSeeds(collides, 4, 3, 5), assert.AssertionError);
});

// ---------------------------------------------------------------------------------------------------
// Interleaved rounds

/**
 * `calls` (the methods in the order they ran) are `rounds` rounds of every method exactly once, round r
 * in the listed order rotated left by r (or unrotated when `rotate` is false). Throws otherwise.
 */
function assertInterleaved(calls: string[], methods: string[], rounds: number, rotate = true): void {
  assert.equal(calls.length, methods.length * rounds, "every method once per round");
  for (let r = 0; r < rounds; r++) {
    const round = calls.slice(r * methods.length, (r + 1) * methods.length);
    assert.deepEqual([...round].sort(), [...methods].sort(), `round ${r} runs each method once: ${round}`);
    const shift = rotate ? r % methods.length : 0;
    const expected = [...methods.slice(shift), ...methods.slice(0, shift)];
    assert.deepEqual(round, expected, `round ${r} order`);
  }
}

Deno.test("roundOrder rotates 0..n−1 left by the round", () => {
  assert.deepEqual(roundOrder(4, 0), [0, 1, 2, 3]);
  assert.deepEqual(roundOrder(4, 1), [1, 2, 3, 0]);
  assert.deepEqual(roundOrder(4, 3), [3, 0, 1, 2]);
  assert.deepEqual(roundOrder(4, 5), [1, 2, 3, 0]);
  assert.deepEqual(roundOrder(1, 7), [0]);
});

Deno.test("interleave runs each method once per round, the order rotating, and files samples by method and round", async () => {
  const methods = ["ar", "sd", "spectr"];
  const calls: string[] = [];
  const samples = await interleave(methods, 4, (m, round, index) => {
    calls.push(m);
    assert.equal(methods[index], m, "index is the method's position in the list");
    return Promise.resolve(`${m}@${round}`);
  });
  assert.deepEqual(calls, [
    "ar",
    "sd",
    "spectr",
    "sd",
    "spectr",
    "ar",
    "spectr",
    "ar",
    "sd",
    "ar",
    "sd",
    "spectr",
  ]);
  assertInterleaved(calls, methods, 4);
  assert.deepEqual(samples, [
    ["ar@0", "ar@1", "ar@2", "ar@3"],
    ["sd@0", "sd@1", "sd@2", "sd@3"],
    ["spectr@0", "spectr@1", "spectr@2", "spectr@3"],
  ]);
  const fixed: string[] = [];
  await interleave(methods, 2, (m) => Promise.resolve(void fixed.push(m)), { rotate: false });
  assert.deepEqual(fixed, ["ar", "sd", "spectr", "ar", "sd", "spectr"]);
  assertInterleaved(fixed, methods, 2, false);
});

Deno.test("power check: assertInterleaved rejects an interleaver that never rotates or runs a method twice", async () => {
  const methods = ["ar", "sd", "spectr"];
  const noRotation: string[] = [];
  for (let r = 0; r < 3; r++) for (const m of methods) noRotation.push(m);
  assert.throws(() => assertInterleaved(noRotation, methods, 3), assert.AssertionError);
  const twice = ["ar", "sd", "sd", "sd", "spectr", "ar", "spectr", "ar", "sd"];
  assert.throws(() => assertInterleaved(twice, methods, 3), assert.AssertionError);
  const rotatedRight: string[] = [];
  for (let r = 0; r < 3; r++) for (let j = 0; j < 3; j++) rotatedRight.push(methods[(j - r + 3) % 3]);
  assert.throws(() => assertInterleaved(rotatedRight, methods, 3), assert.AssertionError);
  // and the real one, unrotated, is rejected as a rotating schedule
  const fixed: string[] = [];
  await interleave(methods, 3, (m) => Promise.resolve(void fixed.push(m)), { rotate: false });
  assert.throws(() => assertInterleaved(fixed, methods, 3), assert.AssertionError);
});

// ---------------------------------------------------------------------------------------------------
// Matrix, header, results

const PAIR_A: PairSpec = { name: "a", target: "/m/a/", draft: "/m/a-draft/", chat: false };
const PAIR_B: PairSpec = { name: "b", target: "/m/b/", draft: "/m/b-draft/", chat: true };

Deno.test("expandMatrix nests pairs × backends × dtypes and skips a cell with the first rule's reason", () => {
  const { cells, skipped } = expandMatrix(
    [PAIR_A, PAIR_B],
    ["cpu", "wasm"],
    (pair, backend) => pair.name === "b" && backend === "cpu" ? ["fp32", "q8"] : ["fp32"],
    [
      (c) => c.backend === "wasm" && c.pair.name === "b" ? "no b on wasm" : undefined,
      // b on wasm: both rules skip it; the first one's reason is the one reported
      (c) => c.dtype === "q8" || (c.backend === "wasm" && c.pair.name === "b") ? "no q8" : undefined,
    ],
  );
  assert.deepEqual(cells.map((c) => `${c.pair.name} ${c.backend} ${c.dtype}`), [
    "a cpu fp32",
    "a wasm fp32",
    "b cpu fp32",
  ]);
  assert.deepEqual(skipped.map((s) => `${s.cell.pair.name} ${s.cell.backend} ${s.cell.dtype}: ${s.reason}`), [
    "b cpu q8: no q8",
    "b wasm fp32: no b on wasm",
  ]);
});

Deno.test("missingFiles names the first missing file of a cell: target config, the dtype's graph, the draft", () => {
  const cell = { pair: PAIR_A, backend: "cpu" as const, dtype: "q8" as const };
  const have = (files: string[]) => (path: string) => files.includes(path);
  assert.equal(
    missingFiles(
      cell,
      have(["/m/a/config.json", "/m/a/onnx/model_quantized.onnx", "/m/a-draft/config.json"]),
    ),
    undefined,
  );
  assert.equal(
    missingFiles(cell, have(["/m/a/config.json", "/m/a/onnx/model.onnx", "/m/a-draft/config.json"])),
    "/m/a/onnx/model_quantized.onnx is missing",
  );
  assert.equal(missingFiles(cell, have([])), "/m/a/config.json is missing");
});

Deno.test("formatHeader puts the machine, Deno, date, uptime and the loads on one line", () => {
  const h: MachineHeader = {
    bench: "bench:x",
    cpu: "Test CPU",
    cores: 2,
    platform: "x86_64-linux",
    deno: "2.9.6",
    date: "2026-12-01T00:00:00.000Z",
    uptimeSeconds: 7200,
    load: { start: [1, 0.5, 0.25], end: null },
  };
  assert.equal(
    formatHeader(h),
    "bench:x on Test CPU, 2 cores, x86_64-linux, Deno 2.9.6; 2026-12-01T00:00:00.000Z; up 2.0 h; " +
      "load average (1, 5, 15 min) at the start 1.00 0.50 0.25",
  );
  const ended = formatHeader({ ...h, uptimeSeconds: null, load: { start: null, end: [2, 1, 0] } });
  assert.ok(
    ended.endsWith(
      "uptime unknown; load average (1, 5, 15 min) at the start unknown, at the end 2.00 1.00 0.00",
    ),
  );
  assert.ok(!formatHeader(h).includes("\n"));
});

Deno.test("cpuModelOf reads /proc/cpuinfo's model name, else Hardware", () => {
  assert.equal(
    cpuModelOf("processor\t: 0\nvendor_id\t: X\nmodel name\t: AMD EPYC 7B13\nflags\t: a\n"),
    "AMD EPYC 7B13",
  );
  assert.equal(cpuModelOf("processor\t: 0\nHardware\t: BCM2835\n"), "BCM2835");
  assert.equal(cpuModelOf("processor\t: 0\n"), undefined);
});

Deno.test("resultJson is one line of JSON; median and RunTotals as documented", () => {
  const line = resultJson({ text: "two\nlines", x: NaN, rows: [{ a: 1 }] });
  assert.ok(!line.includes("\n"));
  assert.deepEqual(JSON.parse(line), { text: "two\nlines", x: null, rows: [{ a: 1 }] });
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
  const totals = new RunTotals();
  const stats = (tokens: number, totalMs: number, blocks: number, plans: DecodeStats["plans"]) =>
    ({ tokens, totalMs, blocks, plans }) as unknown as DecodeStats;
  totals.add(stats(
    10,
    500,
    4,
    [{ method: "sd", k: 1, draftLength: 2, blocks: 3 }, {
      method: "sd",
      k: 1,
      draftLength: 0,
      blocks: 1,
    }] as DecodeStats["plans"],
  ));
  totals.add(
    stats(30, 1500, 6, [{ method: "spectr", k: 2, draftLength: 3, blocks: 6 }] as DecodeStats["plans"]),
  );
  assert.equal(totals.tokensPerSecond, 20); // 40 tokens in 2 s
  assert.equal(totals.blockEfficiency, 4); // 40 tokens in 10 blocks
  assert.equal(totals.plans, "spectr k=2 L=3: 6, sd k=1 L=2: 3, AR: 1");
});
