/**
 * Private test helpers: the shared data files, found relative to the repository (CI clones it with shared/
 * beside it).
 *
 * @module
 */
import { Tokenizer } from "./tokenizer.ts";

/** URL of a file in shared/data. */
export function dataUrl(name: string): URL {
  return new URL(`../../../shared/data/${name}`, import.meta.url);
}

const _cache = new Map<string, Promise<string>>();

/** Text of a file in shared/data (read once). */
export function dataText(name: string): Promise<string> {
  let p = _cache.get(name);
  if (!p) {
    p = Deno.readTextFile(dataUrl(name));
    _cache.set(name, p);
  }
  return p;
}

/** The TinyStories byte-level BPE tokenizer (8,192 tokens). */
export async function tinyStoriesTokenizer(): Promise<Tokenizer> {
  return Tokenizer.fromJSON(await dataText("tinystories-bpe-8k.tokenizer.json"));
}

/** GPT-2's tokenizer (50,257 tokens). */
export async function gpt2Tokenizer(): Promise<Tokenizer> {
  return Tokenizer.fromJSON(await dataText("gpt2.tokenizer.json"));
}

/** The first `count` non-empty lines of the TinyStories sample. */
export async function sampleLines(count: number): Promise<string[]> {
  const text = await dataText("tinystories-sample.txt");
  return text.split("\n").filter((line) => line.length > 0).slice(0, count);
}
