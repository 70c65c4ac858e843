/**
 * `deno task bench:memory`: the memory a process needs to load a target + draft pair on an edge
 * backend — **wasm** (onnxruntime-web) and **kernel** (spectr's own WebAssembly forward pass, no
 * onnxruntime) — and generate with it, one fresh child Deno process per configuration, through the
 * public API (`SpeculativeGenerator.fromPretrained` from mod.ts, `backend`, `numThreads: 1`, then 3 ×
 * `generate("Once upon a time", { maxNewTokens:
 * 64, method: "spectr", k: 4, draftLength: 4, temperature: 1, seed })`, seeds 1, 2, 3).
 *
 * Per configuration it prints, in MiB: RSS after loading, after the first generation and after the
 * third (`Deno.memoryUsage().rss`), the peak RSS of the whole run (`VmHWM` of /proc/self/status,
 * which Deno opens only with --allow-all: the child runs with it; getrusage's `ru_maxrss` where there
 * is no /proc), and the peak of V8's used heap + external memory,
 * sampled every millisecond and after every streamed piece: the figure Supabase's edge runtime
 * holds against its memory limit (its `memory_used.total` = used heap + external), which counts
 * neither WebAssembly memories (onnxruntime-web's heap) nor compiled code. On the harness
 * (bench/_harness.ts; module-level it imports only node:util, so the measured child loads nothing
 * more than before): its header line first, then the table; the last line is one JSON object
 * `{"header", "v8Flags", "runs"}`.
 *
 * Configurations: the bundled pair (models/target + models/draft) for each dtype whose files both
 * folders have (fp32, fp16, q8), the real pair (models/smollm2-135m-instruct from `deno task
 * model:smollm2`, with models/smollm2-draft) at fp32 and q8 when it is built, and
 * `--pair <target>,<draft>[,<label>]` (repeatable) for other folders. The draft uses the target's
 * dtype when it has that file, else fp32. `--backends wasm,kernel` picks the backends (default both;
 * the kernel backend runs fp32 / fp16 graphs and our converter's q8 graphs), `--dtypes fp32,q8` limits the dtypes, `--only bundled|real`
 * the pairs, `--v8-flags=<flags>` is passed to every child (e.g. `--liftoff-only`, self-hosted Deno
 * only: edge platforms set their own).
 *
 * Run: `deno task bench:memory [--dtypes fp32,q8] [--only bundled] [--pair a,b,label] [--repeat 3]
 * [--v8-flags=…]` (`--repeat`: runs per configuration; the table shows medians).
 *
 * @module
 */

import { existsSync, statSync } from "node:fs";
import process from "node:process";
import type { ModelDtype } from "../mod.ts";
import {
  choiceFlag,
  choiceListFlag,
  type Column,
  dtypeFile,
  finishBench,
  formatHeader,
  formatTable,
  intFlag,
  listFlag,
  machineHeader,
  median,
  parseFlags,
  runMain,
} from "./_harness.ts";

/** One configuration: a pair of model folders and the target's dtype. */
export interface MemoryConfig {
  /** A short name for the table. */
  label: string;
  /** The target folder. */
  target: string;
  /** The draft folder. */
  draft: string;
  /** The target's dtype. */
  dtype: ModelDtype;
  /** The draft's dtype (the target's when the draft has that file, else fp32). */
  draftDtype: ModelDtype;
  /**
   * The backend.
   * @default {"wasm"}
   */
  backend?: "wasm" | "kernel";
  /**
   * Read the target's files whole (a loader without `readInto`), as before the kernel backend read
   * files straight into its memory: the memory test's power check.
   * @default {false}
   */
  wholeFiles?: boolean;
  /**
   * Generations after loading (seeds 1, 2, …).
   * @default {3}
   */
  generations?: number;
  /**
   * `maxNewTokens` of each generation.
   * @default {64}
   */
  maxNewTokens?: number;
}

/** What one child process measured, in bytes (peaks) and counts. */
export interface MemoryResult {
  /** The configuration. */
  config: MemoryConfig;
  /** Size of the two ONNX files. */
  weightBytes: number;
  /** RSS after fromPretrained. */
  rssLoaded: number;
  /** RSS after the first generation. */
  rssFirst: number;
  /** RSS after the last generation. */
  rssLast: number;
  /** Peak RSS of the process (VmHWM on Linux, else getrusage's ru_maxrss). */
  rssPeak: number;
  /** Peak of V8 used heap + external memory (sampled). */
  v8Peak: number;
  /** Tokens per generation. */
  tokens: number[];
  /** Seconds to load. */
  loadSeconds: number;
  /** Tokens per second of the generations (all of them together). */
  tokensPerSecond: number;
}

const ROOT = new URL("../", import.meta.url).pathname;

function onnxFile(folder: string, dtype: ModelDtype): string {
  return `${folder}/${dtypeFile(dtype)}`;
}

/** The configurations whose files exist. */
export function configurations(
  dtypes: readonly ModelDtype[],
  only: "bundled" | "real" | undefined,
  pairs: readonly string[],
): MemoryConfig[] {
  const out: MemoryConfig[] = [];
  const add = (label: string, target: string, draft: string, candidates: readonly ModelDtype[]) => {
    for (const dtype of candidates) {
      if (!existsSync(onnxFile(target, dtype)) || !existsSync(`${target}/config.json`)) continue;
      const draftDtype = existsSync(onnxFile(draft, dtype)) ? dtype : "fp32";
      if (!existsSync(onnxFile(draft, draftDtype))) continue;
      out.push({ label, target, draft, dtype, draftDtype });
    }
  };
  if (only !== "real") add("bundled", `${ROOT}models/target`, `${ROOT}models/draft`, dtypes);
  if (only !== "bundled") {
    add(
      "smollm2",
      `${ROOT}models/smollm2-135m-instruct`,
      `${ROOT}models/smollm2-draft`,
      dtypes.filter((d) => d !== "fp16"),
    );
  }
  for (const pair of pairs) {
    const [target, draft, label = "custom"] = pair.split(",");
    if (!target || !draft) throw new TypeError(`--pair must be <target>,<draft>[,<label>], got ${pair}`);
    add(label, target, draft, dtypes);
  }
  return out;
}

/**
 * Peak RSS of this process, bytes: `VmHWM` of /proc/self/status (Linux; Deno opens /proc/self only
 * with --allow-all, which the child gets), else getrusage's `ru_maxrss`. Not `ru_maxrss` where VmHWM
 * exists: Linux carries the spawning process's RSS at fork into it (measured: a child spawned by a
 * 650 MiB test process reported 658 MiB), while VmHWM belongs to the child's own address space.
 */
function peakRss(): number {
  try {
    const m = Deno.readTextFileSync("/proc/self/status").match(/VmHWM:\s+(\d+) kB/);
    if (m) return Number(m[1]) * 1024;
  } catch { /* no /proc: not Linux */ }
  return process.resourceUsage().maxRSS * 1024;
}

/** The child: loads the pair, generates, prints one JSON line (a MemoryResult). */
async function child(config: MemoryConfig): Promise<void> {
  const { SpeculativeGenerator } = await import("../mod.ts");
  const { openModelFolder } = await import("../src/model/loader.ts");
  let v8Peak = 0;
  const sample = () => {
    const m = Deno.memoryUsage();
    v8Peak = Math.max(v8Peak, m.heapUsed + m.external);
  };
  const timer = setInterval(sample, 1);
  const t0 = performance.now();
  const folder = await openModelFolder(config.target);
  const whole = {
    location: folder.location,
    has: (name: string) => folder.has(name),
    readBytes: (name: string) => folder.readBytes(name),
    readJson: (name: string) => folder.readJson(name),
  };
  const generator = await SpeculativeGenerator.fromPretrained({
    target: config.wholeFiles ? whole : config.target,
    draft: config.draft,
    backend: config.backend ?? "wasm",
    numThreads: 1,
    dtype: config.dtype,
    draftOptions: { dtype: config.draftDtype },
  });
  const loadSeconds = (performance.now() - t0) / 1000;
  sample();
  const rssLoaded = Deno.memoryUsage().rss;
  const tokens: number[] = [];
  let rssFirst = 0;
  const t1 = performance.now();
  for (let seed = 1; seed <= (config.generations ?? 3); seed++) {
    const stream = generator.stream("Once upon a time", {
      maxNewTokens: config.maxNewTokens ?? 64,
      method: "spectr",
      k: 4,
      draftLength: 4,
      temperature: 1,
      seed,
    });
    for (;;) {
      const step = await stream.next();
      sample();
      if (step.done) {
        tokens.push(step.value.tokens.length);
        break;
      }
    }
    if (seed === 1) rssFirst = Deno.memoryUsage().rss;
  }
  const seconds = (performance.now() - t1) / 1000;
  clearInterval(timer);
  const result: MemoryResult = {
    config,
    weightBytes: statSync(onnxFile(config.target, config.dtype)).size +
      statSync(onnxFile(config.draft, config.draftDtype)).size,
    rssLoaded,
    rssFirst,
    rssLast: Deno.memoryUsage().rss,
    rssPeak: peakRss(),
    v8Peak,
    tokens,
    loadSeconds,
    tokensPerSecond: tokens.reduce((a, b) => a + b, 0) / seconds,
  };
  await generator.dispose();
  console.log(JSON.stringify(result));
}

/** Runs one configuration in a fresh child process. */
export async function measure(config: MemoryConfig, v8Flags?: string): Promise<MemoryResult> {
  // --allow-all: Deno opens /proc/self/status (VmHWM) only with it; the permissions do not change memory.
  const args = [
    "run",
    "--allow-all",
    ...(v8Flags ? [`--v8-flags=${v8Flags}`] : []),
    new URL(import.meta.url).pathname,
    "--child",
    JSON.stringify(config),
  ];
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const text = new TextDecoder().decode(stdout).trim();
  const last = text.split("\n").at(-1) ?? "";
  if (code !== 0 || !last.startsWith("{")) {
    throw new Error(
      `Cannot measure ${config.label} ${config.dtype}: the child exited with ${code}, got ${
        new TextDecoder().decode(stderr).trim().split("\n").slice(-5).join(" | ") || text
      }`,
    );
  }
  return JSON.parse(last) as MemoryResult;
}

const mib = (bytes: number) => (bytes / 1048576).toFixed(0);

/**
 * The Markdown table docs/deploy.md records: one row per configuration, each cell the median over
 * that configuration's runs (the peak also with its range when there are several).
 */
export function table(runs: readonly MemoryResult[][], v8Flags?: string): string {
  type Runs = readonly MemoryResult[];
  const m = (rs: Runs, f: (r: MemoryResult) => number) => median(rs.map(f));
  const columns: Column<Runs>[] = [
    {
      header: "configuration (1 thread)",
      value: (rs) => {
        const c = rs[0].config;
        return `${c.backend ?? "wasm"}: ${c.label} ${c.dtype}${
          c.draftDtype !== c.dtype ? ` (draft ${c.draftDtype})` : ""
        }${v8Flags ? ` \`--v8-flags=${v8Flags}\`` : ""}`;
      },
    },
    { header: "ONNX files (MB)", value: (rs) => rs[0].weightBytes / 1e6, digits: 1 },
    { header: "RSS loaded", value: (rs) => mib(m(rs, (r) => r.rssLoaded)), align: "right" },
    { header: "RSS after 1st", value: (rs) => mib(m(rs, (r) => r.rssFirst)), align: "right" },
    { header: "RSS after 3rd", value: (rs) => mib(m(rs, (r) => r.rssLast)), align: "right" },
    {
      header: "**RSS peak**",
      value: (rs) => {
        const peaks = rs.map((r) => r.rssPeak);
        const range = rs.length > 1 ? ` (${mib(Math.min(...peaks))}–${mib(Math.max(...peaks))})` : "";
        return `**${mib(m(rs, (r) => r.rssPeak))}**${range}`;
      },
      align: "right",
    },
    { header: "V8 heap + external peak", value: (rs) => mib(m(rs, (r) => r.v8Peak)), align: "right" },
    { header: "tokens (3 runs)", value: (rs) => rs[0].tokens.join(", "), align: "right" },
    { header: "load (s)", value: (rs) => m(rs, (r) => r.loadSeconds), digits: 1 },
    { header: "tokens/s", value: (rs) => m(rs, (r) => r.tokensPerSecond), digits: 1 },
  ];
  return formatTable(columns, runs);
}

async function main(): Promise<void> {
  const flags = parseFlags("bench:memory", {
    options: {
      child: { type: "string" },
      dtypes: { type: "string", default: "fp32,fp16,q8" },
      backends: { type: "string", default: "wasm,kernel" },
      only: { type: "string" },
      pair: { type: "string", multiple: true, default: [] },
      "v8-flags": { type: "string" },
      repeat: { type: "string", default: "1" },
    },
  });
  if (!flags) return;
  const { values } = flags;
  if (values.child !== undefined) {
    await child(JSON.parse(values.child) as MemoryConfig);
    return;
  }
  const only = values.only === undefined
    ? undefined
    : choiceFlag("only", values.only, ["bundled", "real"], "bundled");
  const backends = choiceListFlag("backends", values.backends, ["wasm", "kernel"], []);
  const dtypes = listFlag("dtypes", values.dtypes, []) as ModelDtype[];
  const repeat = intFlag("repeat", values.repeat, 1);
  const configs = backends.flatMap((backend) =>
    configurations(dtypes, only, values.pair).map((c) => ({ ...c, backend }))
  );
  if (configs.length === 0) throw new Error("Cannot measure: no configuration has its files here");
  const header = machineHeader("bench:memory");
  console.log(formatHeader(header));
  const runs: MemoryResult[][] = [];
  for (const config of configs) {
    const rs: MemoryResult[] = [];
    for (let i = 0; i < repeat; i++) {
      const r = await measure(config, values["v8-flags"]);
      rs.push(r);
      console.error(
        `${config.backend} ${config.label} ${config.dtype} run ${i + 1}/${repeat}: peak RSS ${
          mib(r.rssPeak)
        } MiB, after ${mib(r.rssLast)} MiB, V8 heap + external peak ${mib(r.v8Peak)} MiB`,
      );
    }
    runs.push(rs);
  }
  console.log(
    `Deno ${Deno.version.deno} (V8 ${Deno.version.v8}), ${Deno.build.os} ${Deno.build.arch}, ${
      new Date().toISOString().slice(0, 10)
    }; MiB (2^20 bytes)${repeat > 1 ? `, median of ${repeat} runs` : ""}`,
  );
  console.log(table(runs, values["v8-flags"]));
  finishBench(header, { v8Flags: values["v8-flags"] ?? null, runs });
}

if (import.meta.main) await runMain(main);
