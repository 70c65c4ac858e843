/**
 * The one harness every bench script (bench/*.ts) runs on:
 *
 * - the machine/load header: {@linkcode machineHeader} (cpu model, cores, Deno, date, uptime, load
 *   averages at the start), {@linkcode endHeader} (the load at the end), {@linkcode formatHeader};
 * - flags: {@linkcode parseFlags} on `node:util`'s parseArgs (`--help` prints the flags), and typed
 *   helpers ({@linkcode intFlag}, {@linkcode numberFlag}, {@linkcode listFlag}, {@linkcode choiceFlag},
 *   …) that throw a {@linkcode FlagError} (a RangeError naming the flag and the bad value);
 * - pairs: the bundled and the real model pair ({@linkcode PAIRS}), {@linkcode loadPair} through the
 *   package's public API, {@linkcode expandMatrix}: backend × dtype cells, unavailable ones skipped with
 *   the reason;
 * - paired seeds ({@linkcode pairedSeed}) and interleaved rounds ({@linkcode roundOrder},
 *   {@linkcode interleave}): every method runs once per round on the round's seeds, in an order rotated
 *   by one each round;
 * - the results: {@linkcode RunTotals} (tokens, time, blocks and plans of generations),
 *   {@linkcode median}, {@linkcode formatTable} (a markdown table, columns aligned, numbers formatted by
 *   column) and {@linkcode printResultJson}: the one-line JSON object that is every bench's last line
 *   of output (its contract; {@linkcode finishBench} prints the end-of-run load, then it).
 *
 * Light on purpose: at module level it imports only `node:util` and `node:os` (bench/memory.ts's
 * measured child process imports it too); {@linkcode loadPair} imports the package when it is called.
 *
 * @module
 */

import { cpus } from "node:os";
import { parseArgs } from "node:util";
import type { BackendName, DecodeStats, Kernel, ModelDtype, SpeculativeGenerator } from "../mod.ts";

// ---------------------------------------------------------------------------------------------------
// The machine/load header

/** Where and when a bench ran: the first line of its output and the `header` of its last-line JSON. */
export interface MachineHeader {
  /** The bench's name, e.g. "bench:real". */
  bench: string;
  /** The CPU model: /proc/cpuinfo's, else node:os `cpus()`'s (with --allow-sys), else "unknown CPU". */
  cpu: string;
  /** `navigator.hardwareConcurrency`. */
  cores: number;
  /** `${arch}-${os}`. */
  platform: string;
  /** The Deno version. */
  deno: string;
  /** When the bench started (ISO 8601). */
  date: string;
  /** Seconds since boot at the start, null where unknown. */
  uptimeSeconds: number | null;
  /** Load averages (1, 5, 15 min) at the start and at the end (null: unknown, or not ended yet). */
  load: { start: number[] | null; end: number[] | null };
}

/** Whether a permission is granted (queried, never prompted). */
const granted = (descriptor: Deno.PermissionDescriptor): boolean => {
  try {
    return Deno.permissions.querySync(descriptor).state === "granted";
  } catch {
    return false;
  }
};

/**
 * Reads a small text file when --allow-read covers it (never prompts), else undefined. Deno reads
 * /proc files only with --allow-all: without it this is undefined too.
 */
function readIfAllowed(path: string): string | undefined {
  if (!granted({ name: "read", path })) return undefined;
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined;
  }
}

/** The CPU model named by /proc/cpuinfo's text (`model name`, else ARM's `Hardware`), or undefined. */
export function cpuModelOf(cpuinfo: string): string | undefined {
  for (const key of ["model name", "Hardware", "Processor"]) {
    const m = cpuinfo.match(new RegExp(`^${key}\\s*:\\s*(.+)$`, "m"));
    if (m && m[1].trim()) return m[1].trim();
  }
  return undefined;
}

/** The CPU model: /proc/cpuinfo's when readable, else node:os `cpus()`'s when --allow-sys grants it. */
function cpuModel(): string | undefined {
  const fromProc = cpuModelOf(readIfAllowed("/proc/cpuinfo") ?? "");
  if (fromProc) return fromProc;
  if (!granted({ name: "sys", kind: "cpus" })) return undefined;
  try {
    return cpus()[0]?.model?.trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The three load averages now (Deno.loadavg with --allow-sys, else /proc/loadavg), null where unknown. */
export function loadAverage(): number[] | null {
  if (granted({ name: "sys", kind: "loadavg" })) {
    try {
      return Deno.loadavg();
    } catch { /* fall through */ }
  }
  const text = readIfAllowed("/proc/loadavg");
  const xs = text?.trim().split(/\s+/).slice(0, 3).map(Number);
  return xs && xs.length === 3 && xs.every(Number.isFinite) ? xs : null;
}

/** Seconds since boot (Deno.osUptime with --allow-sys, else /proc/uptime), null where unknown. */
function uptimeSeconds(): number | null {
  if (granted({ name: "sys", kind: "osUptime" })) {
    try {
      return Deno.osUptime();
    } catch { /* fall through */ }
  }
  const x = Number(readIfAllowed("/proc/uptime")?.trim().split(/\s+/)[0]);
  return Number.isFinite(x) && x > 0 ? x : null;
}

/** The header of a bench starting now (load at the end still null). */
export function machineHeader(bench: string): MachineHeader {
  return {
    bench,
    cpu: cpuModel() ?? "unknown CPU",
    cores: navigator.hardwareConcurrency,
    platform: `${Deno.build.arch}-${Deno.build.os}`,
    deno: Deno.version.deno,
    date: new Date().toISOString(),
    uptimeSeconds: uptimeSeconds(),
    load: { start: loadAverage(), end: null },
  };
}

/** A copy of `header` with the load averages at the end filled in (now). */
export function endHeader(header: MachineHeader): MachineHeader {
  return { ...header, load: { ...header.load, end: loadAverage() } };
}

/** Load averages as "1.00 0.50 0.25", "unknown" for null. */
export function formatLoad(load: readonly number[] | null): string {
  return load ? load.map((x) => x.toFixed(2)).join(" ") : "unknown";
}

/** The header as one line: bench, machine, Deno, date, uptime, load at the start (and at the end when known). */
export function formatHeader(h: MachineHeader): string {
  const up = h.uptimeSeconds === null ? "uptime unknown" : `up ${(h.uptimeSeconds / 3600).toFixed(1)} h`;
  const end = h.load.end ? `, at the end ${formatLoad(h.load.end)}` : "";
  return `${h.bench} on ${h.cpu}, ${h.cores} cores, ${h.platform}, Deno ${h.deno}; ${h.date}; ${up}; ` +
    `load average (1, 5, 15 min) at the start ${formatLoad(h.load.start)}${end}`;
}

// ---------------------------------------------------------------------------------------------------
// Flags

/** A bad command-line flag: a RangeError naming the flag (`--name`) and the value given. */
export class FlagError extends RangeError {
  /** The flag, without its dashes. */
  readonly flag: string;
  /** The value given (as typed). */
  readonly value: string;
  /**
   * @param flag The flag without dashes.
   * @param value The value given.
   * @param expected What it must be ("an integer >= 1").
   * @param message The whole message instead of "--flag must be expected, got value".
   */
  constructor(flag: string, value: string, expected: string, message?: string) {
    super(message ?? `--${flag} must be ${expected}, got ${JSON.stringify(value)}`);
    this.name = "FlagError";
    this.flag = flag;
    this.value = value;
  }
}

/** The option declarations parseArgs takes. */
export type FlagOptions = Record<
  string,
  { type: "string" | "boolean"; multiple?: boolean; short?: string; default?: string | boolean | string[] }
>;

/** A parseArgs config without `args`. */
export interface FlagConfig {
  /** The flags. */
  options: FlagOptions;
  /** Whether positional arguments are allowed. */
  allowPositionals?: boolean;
}

/** The usage text of a bench: one line per flag, with its default. */
export function usage(bench: string, options: FlagOptions, synopsis = ""): string {
  const lines = [`${bench}${synopsis ? ` ${synopsis}` : ""}; flags:`];
  for (const [name, o] of Object.entries(options)) {
    const value = o.type === "string" ? " <value>" : "";
    const fallback = o.default === undefined || o.default === false
      ? ""
      : ` (default ${JSON.stringify(o.default)})`;
    lines.push(`  --${name}${value}${o.multiple ? " (repeatable)" : ""}${fallback}`);
  }
  lines.push("  --help  (this text)");
  return lines.join("\n");
}

/**
 * parseArgs over `args` (strict: an unknown flag or a missing value is a {@linkcode FlagError}), with
 * `--help` added: then the usage text is printed and the result is undefined (the bench returns).
 */
export function parseFlags<const T extends FlagConfig>(
  bench: string,
  config: T,
  args: string[] = Deno.args,
  synopsis = "",
): ReturnType<typeof parseArgs<T & { args: string[] }>> | undefined {
  if (args.includes("--help") || args.includes("-h")) {
    console.log(usage(bench, config.options, synopsis));
    return undefined;
  }
  try {
    // strict is parseArgs' default: an unknown flag or a missing value throws
    return parseArgs({ ...config, args });
  } catch (error) {
    const code = (error as { code?: string }).code ?? "";
    if (!code.startsWith("ERR_PARSE_ARGS")) throw error;
    const message = (error as Error).message.split(". To specify")[0];
    const flag = message.match(/'(-{1,2}[^' ]+)/)?.[1] ?? "?";
    throw new FlagError(flag.replace(/^-+/, ""), flag, "a flag of this bench", `${bench}: ${message}`);
  }
}

/** An integer flag: `fallback` when absent, else the value, which must be an integer in [min, max]. */
export function intFlag(
  flag: string,
  raw: string | undefined,
  fallback: number,
  { min = 1, max = Number.MAX_SAFE_INTEGER }: { min?: number; max?: number } = {},
): number {
  if (raw === undefined) return fallback;
  const x = raw.trim() === "" ? NaN : Number(raw);
  if (!Number.isInteger(x) || x < min || x > max) {
    throw new FlagError(flag, raw, `an integer ${rangeText(min, max)}`);
  }
  return x;
}

/** A number flag: `fallback` when absent, else the value, which must be a finite number in [min, max]. */
export function numberFlag(
  flag: string,
  raw: string | undefined,
  fallback: number,
  { min = -Number.MAX_VALUE, max = Number.MAX_VALUE }: { min?: number; max?: number } = {},
): number {
  if (raw === undefined) return fallback;
  const x = raw.trim() === "" ? NaN : Number(raw);
  if (!Number.isFinite(x) || x < min || x > max) {
    throw new FlagError(flag, raw, `a number ${rangeText(min, max)}`);
  }
  return x;
}

/** "in [min, max]", ">= min", "<= max" or "" for the bounds a flag has. */
function rangeText(min: number, max: number): string {
  const lo = min > -Number.MAX_VALUE && min > Number.MIN_SAFE_INTEGER;
  const hi = max < Number.MAX_VALUE && max < Number.MAX_SAFE_INTEGER;
  return lo && hi ? `in [${min}, ${max}]` : lo ? `>= ${min}` : hi ? `<= ${max}` : "";
}

/** A comma-separated list flag: `fallback` when absent, else its non-empty trimmed items (at least one). */
export function listFlag(flag: string, raw: string | undefined, fallback: readonly string[]): string[] {
  if (raw === undefined) return [...fallback];
  const items = raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (items.length === 0) throw new FlagError(flag, raw, "a comma-separated list of at least one item");
  return items;
}

/** A comma-separated list of integers, each in [min, max]. */
export function intListFlag(
  flag: string,
  raw: string | undefined,
  fallback: readonly number[],
  range: { min?: number; max?: number } = {},
): number[] {
  return parsedListFlag(
    flag,
    raw,
    fallback,
    (item) => intFlag(flag, item, 0, range),
    `integers ${rangeText(range.min ?? 1, range.max ?? Number.MAX_SAFE_INTEGER)}`,
  );
}

/** A comma-separated list of finite numbers, each in [min, max]. */
export function numberListFlag(
  flag: string,
  raw: string | undefined,
  fallback: readonly number[],
  range: { min?: number; max?: number } = {},
): number[] {
  return parsedListFlag(
    flag,
    raw,
    fallback,
    (item) => numberFlag(flag, item, 0, range),
    `numbers ${rangeText(range.min ?? -Number.MAX_VALUE, range.max ?? Number.MAX_VALUE)}`,
  );
}

/** {@linkcode listFlag} with each item parsed; any bad item is a FlagError naming the whole value. */
function parsedListFlag<T>(
  flag: string,
  raw: string | undefined,
  fallback: readonly T[],
  parse: (item: string) => T,
  items: string,
): T[] {
  if (raw === undefined) return [...fallback];
  return listFlag(flag, raw, []).map((item) => {
    try {
      return parse(item);
    } catch {
      throw new FlagError(flag, raw, `a comma-separated list of ${items}`);
    }
  });
}

/** A flag with one of `choices`: `fallback` when absent. */
export function choiceFlag<const C extends string>(
  flag: string,
  raw: string | undefined,
  choices: readonly C[],
  fallback: C,
): C {
  if (raw === undefined) return fallback;
  if (!(choices as readonly string[]).includes(raw)) {
    throw new FlagError(flag, raw, `one of ${choices.join(", ")}`);
  }
  return raw as C;
}

/** A comma-separated list of `choices` (at least one): `fallback` when absent. */
export function choiceListFlag<const C extends string>(
  flag: string,
  raw: string | undefined,
  choices: readonly C[],
  fallback: readonly C[],
): C[] {
  if (raw === undefined) return [...fallback];
  const items = listFlag(flag, raw, []);
  for (const item of items) {
    if (!(choices as readonly string[]).includes(item)) {
      throw new FlagError(flag, raw, `a comma-separated list of ${choices.join(", ")}`);
    }
  }
  return items as C[];
}

/**
 * Runs a bench's main: a {@linkcode FlagError} prints its message and the hint to `--help`, and exits
 * with status 2 (bad input, not a crash); anything else propagates.
 */
export async function runMain(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (error) {
    if (!(error instanceof FlagError)) throw error;
    console.error(`${error.message} (--help lists the flags)`);
    Deno.exit(2);
  }
}

// ---------------------------------------------------------------------------------------------------
// Pairs

const ROOT = new URL("../", import.meta.url).pathname;

/** A model pair: a target folder, its draft's, and how the benches load and prompt it. */
export interface PairSpec {
  /** The pair's name in tables and flags. */
  name: string;
  /** The target folder (ends with "/"). */
  target: string;
  /** The draft folder (ends with "/"). */
  draft: string;
  /** Whether its prompts go through the chat template (instruct models). */
  chat: boolean;
  /** The draft's dtype whatever the target's (undefined: the package's choice, the target's when the draft has it). */
  draftDtype?: ModelDtype;
}

/**
 * The pairs: `bundled` (models/target + models/draft, TinyStories, committed) and `real`
 * (SmolLM2-135M-Instruct from `deno task model:smollm2` + models/smollm2-draft, its draft fp32).
 */
export const PAIRS = {
  bundled: { name: "bundled", target: `${ROOT}models/target/`, draft: `${ROOT}models/draft/`, chat: false },
  real: {
    name: "real",
    target: `${ROOT}models/smollm2-135m-instruct/`,
    draft: `${ROOT}models/smollm2-draft/`,
    chat: true,
    draftDtype: "fp32",
  },
} as const satisfies Record<string, PairSpec>;

/** The feature drafter's folder (models/smollm2-eagle, built by `deno task model:smollm2`). */
/**
 * The first five of tools/train/smollm2/prompts.py eval_prompts(), held out from the real draft's and
 * the feature drafter's training: the chat prompts of the real-pair benches.
 */
export const HELD_OUT_CHAT_PROMPTS: readonly string[] = Object.freeze([
  "What is the difference between a comet and an asteroid?",
  "How do submarines dive and resurface?",
  "Write a short poem about autumn leaves.",
  "Give me four tips for sleeping better.",
  "Explain how a bicycle gear system works.",
]);

export const EAGLE_FOLDER = `${ROOT}models/smollm2-eagle/`;

/** The ONNX file of a dtype in a model folder, relative to it (fp32 model.onnx, q8 model_quantized.onnx, …). */
export function dtypeFile(dtype: ModelDtype): string {
  const suffix: Partial<Record<ModelDtype, string>> = { fp32: "", fp16: "_fp16", q8: "_quantized" };
  return `onnx/model${suffix[dtype] ?? `_${dtype}`}.onnx`;
}

/** Whether a path exists (readable under --allow-read). */
export function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Threads a bench gives a target session: 1 on wasm (one setting per process there), else 2. */
export function defaultThreads(backend: BackendName): number {
  return backend === "wasm" ? 1 : 2;
}

/** What {@linkcode loadPair} loads. */
export interface LoadPairOptions {
  backend: BackendName;
  /** The target's dtype (undefined: the package's default, fp32). */
  dtype?: ModelDtype;
  /** The target session's threads (undefined: the package's default). */
  threads?: number;
  /** Load the draft too. @default {true} */
  withDraft?: boolean;
  /** Another draft folder (e.g. the feature drafter's) instead of the pair's. */
  draft?: string;
  /** The draft's dtype (default: the pair's `draftDtype`). */
  draftDtype?: ModelDtype;
  /** The kernel (default: the package's). */
  kernel?: Kernel;
}

/**
 * One backend × dtype cell of a pair through the public API, `SpeculativeGenerator.fromPretrained`:
 * the target with `backend`, `dtype`, `numThreads`, and (unless `withDraft: false`) the draft with
 * `draftOptions: { dtype }` when the pair or the caller fixes the draft's dtype.
 */
export async function loadPair(pair: PairSpec, o: LoadPairOptions): Promise<SpeculativeGenerator> {
  const { SpeculativeGenerator } = await import("../mod.ts");
  const draft = o.withDraft === false ? undefined : o.draft ?? pair.draft;
  const draftDtype = o.draftDtype ?? (o.draft === undefined ? pair.draftDtype : undefined);
  return await SpeculativeGenerator.fromPretrained({
    target: pair.target,
    ...(draft ? { draft } : {}),
    ...(draft && draftDtype ? { draftOptions: { dtype: draftDtype } } : {}),
    backend: o.backend,
    ...(o.dtype !== undefined ? { dtype: o.dtype } : {}),
    ...(o.threads !== undefined ? { numThreads: o.threads } : {}),
    ...(o.kernel ? { kernel: o.kernel } : {}),
  });
}

/** One cell of a matrix: a pair on a backend at a target dtype. */
export interface MatrixCell {
  pair: PairSpec;
  backend: BackendName;
  dtype: ModelDtype;
}

/** A cell left out, and why. */
export interface SkippedCell {
  cell: MatrixCell;
  reason: string;
}

/** Why a cell's files are missing (target graph of the dtype, config.json, the draft folder), or undefined. */
export function missingFiles(cell: MatrixCell, has: (path: string) => boolean = exists): string | undefined {
  const { target, draft } = cell.pair;
  for (const path of [`${target}config.json`, `${target}${dtypeFile(cell.dtype)}`, `${draft}config.json`]) {
    if (!has(path)) {
      return `${path} is missing${cell.pair.name === "real" ? " (run deno task model:smollm2)" : ""}`;
    }
  }
  return undefined;
}

/**
 * Expands pairs × backends × dtypes into cells, in that nesting order; `dtypes` may depend on the
 * pair and backend. Each cell goes through the `skip` rules in order: the first reason given leaves
 * it out (reported in `skipped`).
 */
export function expandMatrix(
  pairs: readonly PairSpec[],
  backends: readonly BackendName[],
  dtypes: readonly ModelDtype[] | ((pair: PairSpec, backend: BackendName) => readonly ModelDtype[]),
  skip: readonly ((cell: MatrixCell) => string | undefined)[] = [],
): { cells: MatrixCell[]; skipped: SkippedCell[] } {
  const cells: MatrixCell[] = [], skipped: SkippedCell[] = [];
  for (const pair of pairs) {
    for (const backend of backends) {
      for (const dtype of typeof dtypes === "function" ? dtypes(pair, backend) : dtypes) {
        const cell = { pair, backend, dtype };
        const reason = skip.map((rule) => rule(cell)).find((r) => r !== undefined);
        if (reason === undefined) cells.push(cell);
        else skipped.push({ cell, reason });
      }
    }
  }
  return { cells, skipped };
}

/** "real q8 on wasm: skipped (reason)". */
export function formatSkipped(s: SkippedCell): string {
  return `${s.cell.pair.name} ${s.cell.dtype} on ${s.cell.backend}: skipped (${s.reason})`;
}

// ---------------------------------------------------------------------------------------------------
// Paired seeds and interleaved rounds

/**
 * The seed of prompt `prompt` (0-based, of `prompts`) in round `round` (0-based): 1 + round · prompts
 * + prompt. Every method of a round runs the prompt on this seed, so methods are compared on the
 * same seeds; no two (prompt, round) share one. Round 0 gives the seeds 1..prompts; one prompt gives
 * the seed round + 1.
 */
export function pairedSeed(prompt: number, round: number, prompts: number): number {
  if (!Number.isInteger(prompts) || prompts < 1) {
    throw new RangeError(`prompts must be an integer >= 1, got ${prompts}`);
  }
  if (!Number.isInteger(prompt) || prompt < 0 || prompt >= prompts) {
    throw new RangeError(`prompt must be an integer in [0, ${prompts}), got ${prompt}`);
  }
  if (!Number.isInteger(round) || round < 0) {
    throw new RangeError(`round must be an integer >= 0, got ${round}`);
  }
  return 1 + round * prompts + prompt;
}

/** The order of methods 0..n−1 in round `round`: 0..n−1 rotated left by `round` (each method once). */
export function roundOrder(n: number, round: number): number[] {
  return Array.from({ length: n }, (_, j) => (j + round) % n);
}

/**
 * Runs every method once per round, round after round, in {@linkcode roundOrder} (or in the listed
 * order every round with `rotate: false`), so that slow drifts of a shared machine spread over every
 * method. Returns the samples per method and round: `samples[method][round]`.
 */
export async function interleave<M, S>(
  methods: readonly M[],
  rounds: number,
  run: (method: M, round: number, index: number) => Promise<S>,
  { rotate = true }: { rotate?: boolean } = {},
): Promise<S[][]> {
  const samples: S[][] = methods.map(() => []);
  for (let round = 0; round < rounds; round++) {
    const order = rotate ? roundOrder(methods.length, round) : methods.map((_, i) => i);
    for (const i of order) samples[i][round] = await run(methods[i], round, i);
  }
  return samples;
}

// ---------------------------------------------------------------------------------------------------
// Results

/** The median (the mean of the middle two for an even count; NaN for none). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** The sum. */
export function sum(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}

/** Sums the stats of one configuration's generations: tokens, time, blocks and (for `auto`) its plans. */
export class RunTotals {
  tokens = 0;
  ms = 0;
  blocks = 0;
  readonly #plans = new Map<string, number>();

  /** Adds one generation (its `totalMs` is the time). */
  add(stats: DecodeStats): void {
    this.tokens += stats.tokens;
    this.ms += stats.totalMs;
    this.blocks += stats.blocks;
    for (const plan of stats.plans) {
      const key = plan.draftLength === 0 ? "AR" : `${plan.method} k=${plan.k} L=${plan.draftLength}`;
      this.#plans.set(key, (this.#plans.get(key) ?? 0) + plan.blocks);
    }
  }

  /** Generated tokens per second of wall time. */
  get tokensPerSecond(): number {
    return (this.tokens * 1000) / this.ms;
  }

  /** Tokens per block. */
  get blockEfficiency(): number {
    return this.tokens / this.blocks;
  }

  /** The plans run, most blocks first: "method k=… L=…: blocks, …" ("AR" for target-only blocks). */
  get plans(): string {
    return [...this.#plans].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k}: ${n}`).join(", ");
  }
}

/** One column of {@linkcode formatTable}. */
export interface Column<R> {
  /** The header. */
  header: string;
  /** The cell's value: a row key, or a function of the row. */
  value: keyof R | ((row: R) => unknown);
  /** Numbers: digits after the point (toFixed); without it a number prints as String(x). */
  digits?: number;
  /** Appended to a formatted number (e.g. "x", " %"). */
  suffix?: string;
  /** Multiplies a number before formatting (e.g. 100 for a percentage). */
  scale?: number;
  /** Alignment. @default {"right" for columns with digits, else "left"} */
  align?: "left" | "right";
}

/**
 * A cell's text: null, undefined and non-finite numbers print as "—"; numbers with the column's
 * scale, digits and suffix; booleans as yes/no; anything else as String(value).
 */
export function formatCell<R>(column: Column<R>, value: unknown): string {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return "—";
    const x = value * (column.scale ?? 1);
    return (column.digits === undefined ? String(x) : x.toFixed(column.digits)) + (column.suffix ?? "");
  }
  if (typeof value === "boolean") return value ? "yes" : "no";
  return String(value);
}

/** A markdown table of `rows`: one line per row, every column padded to its widest cell. */
export function formatTable<R>(columns: readonly Column<R>[], rows: readonly R[]): string {
  const text = rows.map((row) =>
    columns.map((c) =>
      formatCell(c, typeof c.value === "function" ? (c.value as (r: R) => unknown)(row) : row[c.value])
    )
  );
  const right = columns.map((c) => (c.align ?? (c.digits !== undefined ? "right" : "left")) === "right");
  const widths = columns.map((c, i) => Math.max(3, c.header.length, ...text.map((t) => t[i].length)));
  const line = (cells: string[]) =>
    `| ${cells.map((s, i) => (right[i] ? s.padStart(widths[i]) : s.padEnd(widths[i]))).join(" | ")} |`;
  const rule = `| ${
    widths.map((w, i) => (right[i] ? `${"-".repeat(w - 1)}:` : "-".repeat(w))).join(" | ")
  } |`;
  return [line(columns.map((c) => c.header)), rule, ...text.map(line)].join("\n");
}

/** The result object as one line of JSON (non-finite numbers become null, as JSON.stringify does). */
export function resultJson(result: Record<string, unknown>): string {
  return JSON.stringify(result);
}

/** Prints the result as the one-line JSON object that must be the bench's last line of output. */
export function printResultJson(result: Record<string, unknown>): void {
  console.log(resultJson(result));
}

/**
 * Ends a bench: prints the load averages at the start and at the end, then (the last line) the
 * result JSON with the finished header first: `{"header": {...}, ...result}`.
 */
export function finishBench(header: MachineHeader, result: Record<string, unknown>): void {
  const done = endHeader(header);
  console.log(
    `load average at the start ${formatLoad(done.load.start)}, at the end ${formatLoad(done.load.end)}`,
  );
  printResultJson({ header: done, ...result });
}
