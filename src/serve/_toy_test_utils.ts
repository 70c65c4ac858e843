/**
 * Test helpers: a toy generator (Markov models over the letters a–h), a spy that slows and counts
 * its pieces, and a loopback server.
 *
 * @module
 */

import {
  type GenerationOptions,
  type GenerationResult,
  SpeculativeGenerator,
} from "../generate/generator.ts";
import { MarkovModel, nearMarkovTable, randomMarkovTable } from "../decode/markov.ts";
import { referenceKernel } from "../kernel/reference.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import type { ServeGenerator, ServeHandler } from "./handler.ts";

const LETTERS = "abcdefgh";
const V = LETTERS.length;
const table = randomMarkovTable(V, 1, 5, { scale: 1.2 });
const draftTable = nearMarkovTable(table, V, 6, { noise: 0.7 });

/** A chat template that joins the contents and ends with "h" as the generation prompt. */
export const TOY_CHAT_TEMPLATE =
  "{% for m in messages %}{{ m.content }}{% endfor %}{% if add_generation_prompt %}h{% endif %}";

/** A toy generator over the letters a–h; with `chatTemplate`, its tokenizer has one. */
export function toyGenerator(chatTemplate?: string, maxLength = 1 << 20): SpeculativeGenerator {
  const tokenizer = Tokenizer.fromJSON(
    {
      model: { type: "BPE", vocab: Object.fromEntries([...LETTERS].map((c, i) => [c, i])), merges: [] },
      decoder: { type: "ByteLevel" },
    },
    chatTemplate === undefined ? {} : { chat_template: chatTemplate },
  );
  return new SpeculativeGenerator({
    target: new MarkovModel({ table, vocabSize: V, maxLength }),
    draft: new MarkovModel({ table: draftTable, vocabSize: V, maxLength }),
    tokenizer,
    kernel: referenceKernel,
  });
}

/** Counters of a {@linkcode spyGenerator}. */
export interface Spy {
  /** Pieces the wrapped generator yielded. */
  pieces: number;
  /** Generations that started. */
  started: number;
  /** Generations that ended with a result. */
  finished: number;
  /** Generations that ended by an error or abort. */
  failed: number;
  /** Signals passed in. */
  signals: AbortSignal[];
  /** The options of every generation, in order. */
  options: GenerationOptions[];
}

/** Wraps a generator: waits `delayMs` before each piece and counts what happens. */
export function spyGenerator(
  inner: ServeGenerator,
  delayMs: number,
): { generator: ServeGenerator; spy: Spy } {
  const spy: Spy = { pieces: 0, started: 0, finished: 0, failed: 0, signals: [], options: [] };
  const generator: ServeGenerator = {
    tokenizer: inner.tokenizer,
    async *stream(prompt: string | readonly number[], options: GenerationOptions = {}) {
      spy.started++;
      spy.options.push(options);
      if (options.signal) spy.signals.push(options.signal);
      const it = inner.stream(prompt, options);
      try {
        for (;;) {
          await new Promise((r) => setTimeout(r, delayMs));
          const step = await it.next();
          if (step.done) {
            spy.finished++;
            return step.value as GenerationResult;
          }
          spy.pieces++;
          yield step.value;
        }
      } catch (error) {
        spy.failed++;
        throw error;
      } finally {
        await it.return(undefined as never).catch(() => {});
      }
    },
  };
  return { generator, spy };
}

/** A handler served on 127.0.0.1 at a free port. */
export interface LoopbackServer {
  /** `http://127.0.0.1:<port>`. */
  origin: string;
  /** Stops the handler's generations and the server. */
  close(): Promise<void>;
}

/** Serves `handler` on loopback at a free port. */
export function serveLoopback(handler: ServeHandler): LoopbackServer {
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, handler);
  return {
    origin: `http://127.0.0.1:${server.addr.port}`,
    async close() {
      handler.close();
      await server.shutdown();
    },
  };
}
