/**
 * Giving the event loop a turn during a generation. onnxruntime-web's wasm `run` and the toy
 * models compute synchronously on the calling thread, and `await`ing an already-settled promise
 * only runs microtasks: a generation made of such steps would let no timer, network I/O or other
 * request in until it ends. {@linkcode yieldToEventLoop} is awaited between forwards (by the
 * decoders and the ONNX session wrapper) and takes a real turn of the event loop once the
 * synchronous work since the last turn is longer than {@linkcode YIELD_SLICE_MS}.
 *
 * The turn is a `setTimeout(0)` armed at the start of the slice and awaited at its end: by then
 * it is due, so the turn costs no waiting, and a due timer is what makes Deno's event loop run
 * its expired timers and poll I/O; one `crypto.subtle.digest` of a byte (~40 µs) follows, so the
 * other timers of the same batch run before the generation resumes. Measured on Deno 2.9 (2
 * cores): a `setTimeout(0)` awaited at once costs ~2.1 ms (timer granularity), one armed 2 ms
 * earlier ~10 µs; a `MessageChannel` round trip costs 7 µs but lets neither timers nor HTTP in
 * while a message is always ready; a digest alone lets I/O in but runs timers only now and then.
 *
 * @module
 */

/** Longest run of synchronous work, ms, before {@linkcode yieldToEventLoop} takes a turn. */
export const YIELD_SLICE_MS = 4;

interface Armed {
  promise: Promise<void>;
  resolve: () => void;
  id: ReturnType<typeof setTimeout>;
}

let lastTurn = now();
/** Generations in progress ({@linkcode beginEventLoopTurns} … {@linkcode endEventLoopTurns}). */
let active = 0;
/** The next turn's timer, armed right after the last turn while a generation runs. */
let armed: Armed | undefined;

function now(): number {
  return globalThis.performance?.now() ?? Date.now();
}

function newTimer(): Armed {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve, id: setTimeout(resolve, 0) };
}

function clear(timer: Armed): void {
  clearTimeout(timer.id);
  timer.resolve();
}

const ONE_BYTE = new Uint8Array(1);

/**
 * The turn itself: the armed timer, then one asynchronous operation. The timer makes the event
 * loop run; the operation lets the other timers that came due in the same batch run before this
 * continuation (timer callbacks run one by one, each followed by its microtasks, so without it the
 * generation would resume before a user's interval that fell due a moment later than our timer).
 * While a generation runs, the next turn's timer is armed at once, so it is due by the next turn.
 */
async function turn(timer: Armed): Promise<void> {
  await timer.promise;
  const subtle = globalThis.crypto?.subtle;
  if (subtle) await subtle.digest("SHA-256", ONE_BYTE).catch(() => {});
  lastTurn = now();
  if (active > 0 && armed === undefined) armed = newTimer();
}

/** Takes the armed timer (or a new one when none is armed). */
function take(): Armed {
  const timer = armed ?? newTimer();
  armed = undefined;
  return timer;
}

/**
 * Marks the start of a generation: from now on the next turn's timer is kept armed, so a turn
 * costs no waiting. Pair every call with {@linkcode endEventLoopTurns} (in a `finally`).
 */
export function beginEventLoopTurns(): void {
  active++;
  armed ??= newTimer();
}

/** Marks the end of a generation; when none is left, clears the armed timer (nothing stays pending). */
export function endEventLoopTurns(): void {
  active = Math.max(0, active - 1);
  if (active === 0 && armed !== undefined) {
    clear(armed);
    armed = undefined;
  }
}

/**
 * Lets timers, I/O and other tasks run when the synchronous work since the last turn has passed
 * {@linkcode YIELD_SLICE_MS}; otherwise returns at once. Call it between forwards, inside
 * {@linkcode beginEventLoopTurns} … {@linkcode endEventLoopTurns} (outside them a turn waits for a
 * fresh timer, ~2 ms).
 *
 * @returns After the turn (or at once).
 * @example A long synchronous loop that keeps a timer ticking
 * ```ts
 * import { beginEventLoopTurns, endEventLoopTurns, yieldToEventLoop } from "./event_loop.ts";
 * import assert from "node:assert/strict";
 * let ticks = 0;
 * const timer = setInterval(() => ticks++, 5);
 * beginEventLoopTurns();
 * try {
 *   const end = performance.now() + 100;
 *   while (performance.now() < end) {
 *     const busy = performance.now() + 1;
 *     while (performance.now() < busy); // 1 ms of synchronous work
 *     await yieldToEventLoop();
 *   }
 * } finally {
 *   endEventLoopTurns();
 *   clearInterval(timer);
 * }
 * assert.ok(ticks >= 10, `the timer ticked ${ticks} times in 100 ms`);
 * ```
 */
export async function yieldToEventLoop(): Promise<void> {
  if (now() - lastTurn < YIELD_SLICE_MS) return;
  await turn(take());
}

/**
 * Runs one synchronous-compute step (a forward), then takes a turn of the event loop when the
 * work since the last turn passed {@linkcode YIELD_SLICE_MS}. Inside a generation the turn uses
 * the armed timer; outside one, the step arms its own before it runs (due after all but the
 * shortest steps) and clears it when no turn is needed, so nothing is left pending.
 *
 * @param step The work, e.g. `() => session.run(feeds)`.
 * @returns The step's result, after the turn.
 * @example
 * ```ts
 * import { runThenYield } from "./event_loop.ts";
 * import assert from "node:assert/strict";
 * let ticked = false;
 * setTimeout(() => (ticked = true), 0);
 * const value = await runThenYield(() => {
 *   const busy = performance.now() + 6;
 *   while (performance.now() < busy); // 6 ms of synchronous work
 *   return Promise.resolve(42);
 * });
 * assert.equal(value, 42);
 * assert.ok(ticked, "the timer ran before the step's result came back");
 * ```
 */
export async function runThenYield<T>(step: () => Promise<T>): Promise<T> {
  const own = armed === undefined ? newTimer() : undefined;
  try {
    return await step();
  } finally {
    if (now() - lastTurn >= YIELD_SLICE_MS) {
      const timer = armed ?? own!;
      if (timer === armed) armed = undefined;
      if (own !== undefined && own !== timer) clear(own);
      await turn(timer);
    } else if (own !== undefined) {
      clear(own);
    }
  }
}
