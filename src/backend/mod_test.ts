// The backend registry (src/backend/mod.ts): every entry is a Backend under its own name, the names
// (BackendName, ResolvedBackend, BACKENDS) and the per-backend decisions derive from it, an unknown
// name is a RangeError naming the options. Each check has a power check: the same assertion on a
// broken entry, a drifted list or a wrong type fails.
import assert from "node:assert/strict";
import {
  type Backend,
  type BackendName,
  backendNames,
  BACKENDS,
  backends,
  type BackendSession,
  getBackend,
  requireOnnxruntime,
  resolveBackend,
  type ResolvedBackend,
} from "./mod.ts";
import type { KernelSession } from "./kernel/kernel_session.ts";
import { createOnnxSession } from "../model/session.ts";
import { openModelFolder } from "../model/loader.ts";

/** What is wrong with `entry` as the registry entry `key` (empty: it satisfies the Backend interface). */
function backendProblems(key: string, entry: object): string[] {
  const problems: string[] = [];
  const b = entry as Partial<Backend>, fields: Record<string, unknown> = { ...entry };
  if (b.name !== key) problems.push(`name ${JSON.stringify(b.name)} is not its key ${JSON.stringify(key)}`);
  if (typeof b.description !== "string" || b.description === "") problems.push("no description");
  for (const flag of ["onnxruntime", "worker", "blocking", "edge"]) {
    if (typeof fields[flag] !== "boolean") problems.push(`${flag} is not a boolean`);
  }
  if (!["session", "process", "ignored"].includes(String(b.threads))) problems.push(`threads ${b.threads}`);
  if (b.runtimeModule !== undefined && !/^@?[^@:]+@\d/.test(b.runtimeModule)) {
    problems.push(`runtimeModule ${b.runtimeModule} is not a pinned npm package`);
  }
  if (b.onnxruntime && b.runtimeModule === undefined) {
    problems.push("an onnxruntime backend without its module");
  }
  for (const method of ["available", "load", "createSession"]) {
    if (typeof fields[method] !== "function") problems.push(`no ${method}()`);
  }
  if (b.checkOptions !== undefined && typeof b.checkOptions !== "function") problems.push("checkOptions");
  if (!Object.isFrozen(entry)) problems.push("not frozen");
  return problems;
}

Deno.test("every registry entry is a frozen Backend under its own name", () => {
  assert.ok(Object.isFrozen(backends), "the registry is frozen");
  assert.ok(backendNames.length >= 4);
  for (const [key, b] of Object.entries(backends)) {
    assert.deepEqual(backendProblems(key, b), [], key);
    assert.equal(getBackend(key), b);
  }
  // power: the check rejects what is not a Backend
  const k = backends.kernel;
  assert.deepEqual(backendProblems("kernel", Object.freeze({ ...k, name: "kernel2" })), [
    'name "kernel2" is not its key "kernel"',
  ]);
  const broken = { ...k, threads: "many", createSession: undefined, onnxruntime: "yes" };
  assert.deepEqual(backendProblems("kernel", broken), [
    "onnxruntime is not a boolean",
    "threads many",
    "an onnxruntime backend without its module",
    "no createSession()",
    "not frozen",
  ]);
});

Deno.test("BACKENDS, backendNames and the name types derive from the registry", () => {
  const keys = Object.keys(backends);
  assert.deepEqual([...backendNames], keys);
  assert.deepEqual([...BACKENDS], [...keys, "auto"]);
  assert.deepEqual(
    [...BACKENDS],
    ["wasm", "webgpu", "cpu", "kernel", "auto"],
    "the public names are unchanged",
  );
  assert.ok(Object.isFrozen(BACKENDS) && Object.isFrozen(backendNames));
  // power: the same comparison catches a list that drifted from the registry
  assert.throws(() => assert.deepEqual(["wasm", "cpu", "kernel", "auto"], [...keys, "auto"]));

  // compile time: the public unions are exactly these (a wrong one is a type error)
  type Equal<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
  const resolved: Equal<ResolvedBackend, "wasm" | "webgpu" | "cpu" | "kernel"> = true;
  const name: Equal<BackendName, ResolvedBackend | "auto"> = true;
  const fromKeys: Equal<ResolvedBackend, keyof typeof backends> = true;
  // @ts-expect-error power: a union without "kernel" is not ResolvedBackend
  const wrong: Equal<ResolvedBackend, "wasm" | "webgpu" | "cpu"> = true;
  assert.ok(resolved && name && fromKeys && wrong);
  // compile time: the kernel session is a BackendSession by type, no cast
  const asSession = (s: KernelSession): BackendSession => s;
  assert.equal(typeof asSession, "function");
});

Deno.test("an unknown backend is a RangeError naming the options", async () => {
  assert.throws(
    () => getBackend("tpu"),
    (e: Error) =>
      e instanceof RangeError &&
      e.message === `Unknown backend "tpu": expected one of ${backendNames.join(", ")}`,
  );
  assert.throws(
    () => getBackend("auto"),
    (e: Error) => e instanceof RangeError && /resolveBackend/.test(e.message),
  );
  assert.throws(() => getBackend("toString"), RangeError, "no prototype keys");
  await assert.rejects(
    () => resolveBackend("tpu", "create a session"),
    (e: Error) =>
      e instanceof RangeError &&
      e.message ===
        'Cannot create a session: backend must be one of wasm, webgpu, cpu, kernel, auto, got "tpu"',
  );
  const folder = await openModelFolder({ "onnx/model.onnx": new Uint8Array([1, 2, 3]) });
  await assert.rejects(
    // deno-lint-ignore no-explicit-any
    () => createOnnxSession(folder, { backend: "tpu" as any }),
    (e: Error) => e instanceof RangeError && e.message.includes(BACKENDS.join(", ")),
  );
  for (const name of backendNames) assert.equal(await resolveBackend(name), name);
  // power: a registered name is no error
  assert.doesNotThrow(() => getBackend("kernel"));
});

Deno.test("the registry answers the per-backend questions the callers used to branch on by name", () => {
  assert.deepEqual(backendNames.filter((n) => !backends[n].onnxruntime), ["kernel"]);
  assert.deepEqual(backendNames.filter((n) => backends[n].threads === "session"), ["cpu"]);
  assert.deepEqual(backendNames.filter((n) => backends[n].worker), ["wasm"]);
  assert.deepEqual(backendNames.filter((n) => !backends[n].blocking), ["cpu"]);
  // the edge bundle's external modules (tools/bundle.ts), as they were written out before the registry
  assert.deepEqual(
    backendNames.filter((n) => !backends[n].edge).map((n) => `npm:${backends[n].runtimeModule}`).sort(),
    ["npm:onnxruntime-node@1.30.0", "npm:onnxruntime-web@1.30.0/webgpu"],
  );
  assert.throws(
    () => requireOnnxruntime("kernel", "load the feature drafter"),
    (e: Error) =>
      e instanceof RangeError &&
      e.message ===
        'Cannot load the feature drafter: it runs on onnxruntime (backend "cpu", "wasm" or "webgpu"), got "kernel"',
  );
  for (const ok of ["wasm", "webgpu", "cpu", "auto", undefined, "tpu"]) {
    assert.doesNotThrow(() => requireOnnxruntime(ok, "load the feature drafter"), String(ok));
  }
});

/** The `runtimeModule`s whose `npm:` specifier is not imported as a literal in `source`. */
function notImported(source: string, modules: readonly string[]): string[] {
  return modules.filter((m) => !source.includes(`import("npm:${m}")`));
}

Deno.test("each onnxruntime backend's runtimeModule is what src/backend/ort/load.ts imports (a literal import())", async () => {
  const source = await Deno.readTextFile(new URL("./ort/load.ts", import.meta.url));
  const modules = backendNames.map((n) => backends[n].runtimeModule).filter((m) => m !== undefined);
  assert.deepEqual(modules.length, backendNames.filter((n) => backends[n].onnxruntime).length);
  assert.deepEqual(notImported(source, modules), []);
  // power: a module the loader does not import (a version drift) is reported
  assert.deepEqual(notImported(source, ["onnxruntime-web@1.29.0"]), ["onnxruntime-web@1.29.0"]);
});
