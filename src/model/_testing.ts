// Test helpers for src/model (not exported from mod.ts).
import { existsSync } from "node:fs";

/** The bundled model folders: models/ at the repository root, or $SPECTR_MODELS_DIR when set. */
export const MODELS_DIR: string = (() => {
  const dir = Deno.permissions.querySync({ name: "env", variable: "SPECTR_MODELS_DIR" }).state === "granted"
    ? Deno.env.get("SPECTR_MODELS_DIR")
    : undefined;
  return dir ? dir.replace(/\/*$/, "/") : new URL("../../models/", import.meta.url).pathname;
})();

/** Path of a bundled model folder. */
export function modelPath(name: "target" | "draft"): string {
  return MODELS_DIR + name;
}

/** Whether a bundled model folder is complete enough to load; prints why not. */
export function haveModel(name: "target" | "draft"): boolean {
  const ok = existsSync(`${modelPath(name)}/config.json`) && existsSync(`${modelPath(name)}/onnx/model.onnx`);
  if (!ok) {
    console.warn(`SKIP: models/${name} (config.json + onnx/model.onnx) is missing; its tests are ignored`);
  }
  return ok;
}

/** Largest absolute elementwise difference; throws on a length mismatch. */
export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let d = 0;
  for (let i = 0; i < a.length; i++) {
    const x = Math.abs(a[i] - b[i]);
    if (!(x <= d)) d = x; // NaN propagates
  }
  return d;
}

/** Index of the largest entry of row `row` of a [rows, vocab] block (ties: lowest id). */
export function argmax(logits: Float32Array, row: number, vocab: number): number {
  let best = 0;
  const at = row * vocab;
  for (let i = 1; i < vocab; i++) if (logits[at + i] > logits[at + best]) best = i;
  return best;
}

/** A deterministic token list in [0, vocab) (mulberry32). */
export function randomTokens(n: number, vocab: number, seed: number): number[] {
  let s = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out.push(((t ^ (t >>> 14)) >>> 0) % vocab);
  }
  return out;
}

/** Whether a permission is granted; prints which tests are ignored when it is not. */
export function granted(name: "ffi" | "net" | "write", what: string): boolean {
  // Network tests only talk to a server of their own on loopback: that scope is enough.
  const descriptor: Deno.PermissionDescriptor = name === "net" ? { name, host: "127.0.0.1" } : { name };
  const ok = Deno.permissions.querySync(descriptor).state === "granted";
  if (!ok) console.warn(`SKIP: ${what} needs --allow-${name}; ignored`);
  return ok;
}
