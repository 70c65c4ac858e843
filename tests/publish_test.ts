// The package is publishable to JSR: `deno publish --dry-run` (run here in a child process, from the
// repository root) exits 0, and the files it would upload are the package's and no more: the three
// entry points, src/ with the kernel's .wasm and the session worker (both read at run time through
// import.meta.url, so no import pulls them in), README.md and LICENSE — and nothing from models/,
// tests/, tools/, bench/, wasm/, examples/, no test file, no test fixture.
//
// What makes it fail: deno.json without "license" and without a LICENSE file (missing-license), a
// slow type in the public API (an exported function or constant without an explicit type), a
// published module importing an excluded file, a syntax or type error in the published graph, or a
// "publish" include/exclude that drops the .wasm / the worker or lets tests, models or fixtures in.
//
// `--allow-dirty`: the check is about the package, not about the working tree being committed (a
// real publish from CI runs on a clean checkout). The dry run works offline: it type-checks and
// lists the files locally and contacts no registry (run here with JSR unreachable).
import assert from "node:assert/strict";

const ROOT = new URL("../", import.meta.url);

Deno.test("deno publish --dry-run passes and lists the package's files and no others", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["publish", "--dry-run", "--allow-dirty"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const out = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  assert.equal(code, 0, `deno publish --dry-run exited with ${code}:\n${out.slice(-4000)}`);
  assert.match(out, /Success Dry run complete/);
  const root = ROOT.href;
  const files = [...out.matchAll(/^\s*(file:\/\/\S+) \(/gm)].map((m) => m[1].slice(root.length));
  assert.ok(files.length > 0, `no file list in:\n${out.slice(-2000)}`);
  for (
    const needed of [
      "mod.ts",
      "decode.ts",
      "model.ts",
      "deno.json",
      "README.md",
      "LICENSE",
      "src/kernel/spectr_kernel.wasm",
      "src/backend/ort/_session_worker.ts",
      "src/backend/mod.ts",
      "src/model/session.ts",
      "src/generate/generator.ts",
    ]
  ) {
    assert.ok(files.includes(needed), `${needed} is published (files: ${files.join(", ")})`);
  }
  const outside = files.filter((f) =>
    !/^(mod|decode|model)\.ts$|^deno\.json$|^README\.md$|^LICENSE$|^src\//.test(f)
  );
  assert.deepEqual(outside, [], "nothing outside the entry points, src/, README.md and LICENSE");
  const tests = files.filter((f) => /_test\.ts$|\/testdata\/|\/_testing\.ts$|\/_test_data\.ts$/.test(f));
  assert.deepEqual(tests, [], "no test files or fixtures");
  for (const dir of ["models/", "tests/", "tools/", "bench/", "wasm/", "examples/"]) {
    assert.ok(!files.some((f) => f.startsWith(dir)), `nothing from ${dir}`);
  }
});
