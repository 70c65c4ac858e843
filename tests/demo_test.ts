/**
 * README's first command is `deno task demo`. This runs the same script (tools/demo.ts, the task's
 * permissions) with few tokens and one run per row, in a child process, and checks what a user
 * relies on: it exits 0, streams a chat answer on the real pair (where the target is built and the
 * draft is there; CI builds the target) or a story on the bundled pair (`--toy`), prints the speed
 * table with every row, the per-block explanation table and a verdict on the speed goal (on the
 * real target: tokens/s vs autoregressive with α, c_v and c_d). On the real target the demo runs
 * the feature drafter (models/smollm2-eagle) when it is built and otherwise says why it runs the
 * draft model; both are accepted here. No numbers are asserted: speed is shown by the demo and
 * bench/, never tested. Needs `--allow-run`; ignored, with the reason printed, without it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { haveModel } from "../src/model/_testing.ts";

const canRun = Deno.permissions.querySync({ name: "run", command: Deno.execPath() }).state === "granted";
const ready = haveModel("target") && haveModel("draft");
if (!canRun) console.log("demo_test ignored: needs --allow-run (spawns `deno run tools/demo.ts`)");

const real = [
  "../models/smollm2-135m-instruct/build.json",
  "../models/smollm2-draft/onnx/model.onnx",
].every((f) => {
  try {
    return Deno.statSync(new URL(f, import.meta.url)).isFile;
  } catch {
    return false;
  }
});

async function runDemo(extra: string[]): Promise<string> {
  const demo = new URL("../tools/demo.ts", import.meta.url).pathname;
  const config = new URL("../deno.json", import.meta.url).pathname;
  // The demo task's permissions (deno.json "demo").
  const child = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--config=${config}`,
      "--allow-read",
      "--allow-env",
      "--allow-ffi",
      "--allow-sys",
      "--allow-run",
      `--allow-write=${new URL("../models", import.meta.url).pathname}`,
      demo,
      ...extra,
      "--runs",
      "1",
      "--tokens",
      "12",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(child.stdout);
  assert.ok(child.success, `the demo failed:\n${new TextDecoder().decode(child.stderr)}\n${text}`);
  return text;
}

function assertRows(text: string, rows: string[]): void {
  for (const row of rows) {
    assert.match(
      text,
      new RegExp(`^${row} +[\\d.]+ +[\\d.]+ +[\\d.]+x +[\\d.]+x$`, "m"),
      `speed row ${row}`,
    );
  }
  assert.match(text, /^best sd: sd L=\d$/m);
}

Deno.test({
  name:
    "the demo (README's first command) on the real pair streams a chat answer and prints the speed, why and verdict tables",
  ignore: !canRun || !real,
  async fn() {
    const text = await runDemo(["--backend", "wasm"]);
    assert.match(
      text,
      /^spectr demo — SmolLM2-135M-Instruct \(fp32\) \+ models\/smollm2-(draft|eagle \(feature drafter\)) on wasm/m,
    );
    if (/smollm2-draft on wasm/.test(text)) {
      assert.match(
        text,
        /^spectr demo: the feature drafter .* is not built /m,
        "the reason for the fallback",
      );
    }
    assert.match(text, /its one-off cost calibration ran in the warm-up, not in its row/);
    assert.match(text, /^assistant: /m);
    assert.match(text, /\[sd L=4: \d+ tokens, [\d.]+ tokens\/s, block efficiency [\d.]+/);
    assertRows(text, [
      "autoregressive",
      "sd L=2",
      "sd L=6",
      "spectr k=2 L=4",
      "spectr k=4 L=4",
      "specinfer-wor k=4 L=4",
    ]);
    assert.match(text, /^spectr k=4 L=4 +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+x +[\d.]+ +[\d.]+x +[\d.]+x$/m);
    assert.match(text, /Goal best exact method >= 1\.5x autoregressive: (met|NOT met) on wasm/);
    assert.match(
      text,
      /^Verdict from this run: .+ [\d.]+ tokens\/s vs autoregressive [\d.]+ tokens\/s = [\d.]+x, with α = [\d.]+ .*c_v = [\d.]+, c_d = [\d.]+/m,
    );
  },
});

Deno.test({
  name:
    "the demo --toy streams a story from the bundled pair and prints the speed table, the why table and a verdict",
  ignore: !canRun || !ready,
  async fn() {
    const text = await runDemo(["--toy", "--backend", "wasm"]);
    assert.match(text, /^spectr demo — bundled TinyStories pair on wasm/m);
    assert.match(text, /^Once upon a time/m);
    assert.match(text, /\[spectr k=4 L=4: \d+ tokens, [\d.]+ tokens\/s, block efficiency [\d.]+/);
    assertRows(text, [
      "autoregressive",
      "sd L=2",
      "sd L=4",
      "spectr k=2 L=4",
      "spectr k=4 L=4",
      "spectr k=8 L=4",
    ]);
    assert.match(text, /^spectr k=4 L=4 +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+x +[\d.]+ +[\d.]+x +[\d.]+x$/m);
    assert.match(text, /Goal spectr >= 2\.13x autoregressive and >= 1\.37x sd: (met|NOT met) on wasm/);
  },
});
