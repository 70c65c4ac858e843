/**
 * README's first command is `deno task demo`. This runs the same script (tools/demo.ts, the task's
 * permissions) with few tokens and one run per row, in a child process, and checks what a user
 * relies on: it exits 0, streams a story, prints the speed table with every row, the per-block
 * explanation table and a verdict on the speed goal. No numbers are asserted: speed is shown by the
 * demo and bench/, never tested. Needs `--allow-run`; ignored, with the reason printed, without it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { haveModel } from "../src/model/_testing.ts";

const canRun = Deno.permissions.querySync({ name: "run", command: Deno.execPath() }).state === "granted";
const ready = haveModel("target") && haveModel("draft");
if (!canRun) console.log("demo_test ignored: needs --allow-run (spawns `deno run tools/demo.ts`)");

Deno.test({
  name:
    "the demo (README's first command) streams a story and prints the speed table, the why table and a verdict",
  ignore: !canRun || !ready,
  async fn() {
    const demo = new URL("../tools/demo.ts", import.meta.url).pathname;
    const config = new URL("../deno.json", import.meta.url).pathname;
    const child = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        `--config=${config}`,
        "--allow-read",
        "--allow-env",
        "--allow-ffi",
        "--allow-sys",
        demo,
        "--backend",
        "wasm",
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
    assert.match(text, /^spectr demo — bundled TinyStories pair on wasm/m);
    assert.match(text, /^Once upon a time/m);
    assert.match(text, /\[spectr k=4 L=4: \d+ tokens, [\d.]+ tokens\/s, block efficiency [\d.]+/);
    for (
      const row of [
        "autoregressive",
        "sd L=2",
        "sd L=4",
        "spectr k=2 L=4",
        "spectr k=4 L=4",
        "spectr k=8 L=4",
      ]
    ) {
      assert.match(
        text,
        new RegExp(`^${row} +[\\d.]+ +[\\d.]+ +[\\d.]+x +[\\d.]+x$`, "m"),
        `speed row ${row}`,
      );
    }
    assert.match(text, /^best sd: sd L=\d$/m);
    assert.match(text, /^spectr k=4 L=4 +[\d.]+ +[\d.]+ +[\d.]+ +[\d.]+x +[\d.]+ +[\d.]+x +[\d.]+x$/m);
    assert.match(text, /Goal spectr >= 2\.13x autoregressive and >= 1\.37x sd: (met|NOT met) on wasm/);
  },
});
