/**
 * Stop strings over streamed text: finds the first occurrence of any stop string, cuts the text
 * before it, and holds back the tail that could still become a stop string so that no streamed
 * piece ever has to be taken back.
 *
 * @module
 */

/**
 * Accumulates streamed text and applies stop strings.
 *
 * @example
 * ```ts
 * import { StopMatcher } from "./stop.ts";
 * import assert from "node:assert/strict";
 * const stops = new StopMatcher(["THE END"]);
 * stops.push("and they lived. THE E");
 * assert.equal(stops.take(), "and they lived. "); // "THE E" might become the stop string
 * stops.push("ND and more");
 * assert.equal(stops.stopped, true);
 * assert.equal(stops.take(), "");
 * assert.equal(stops.text, "and they lived. ");
 * ```
 */
export class StopMatcher {
  readonly #stops: string[];
  readonly #hold: number;
  #text = "";
  #emitted = 0;
  #searchedTo = 0;
  #ended = false;
  /** True once a stop string was found; `text` is then cut before it. */
  stopped = false;

  /**
   * Starts with no text.
   *
   * @param stop One stop string or several; empty list = no stop strings.
   * @throws {TypeError} a stop entry that is not a string.
   * @throws {RangeError} an empty stop string, or more than 16 of them.
   */
  constructor(stop: string | readonly string[]) {
    const stops = typeof stop === "string" ? [stop] : Array.isArray(stop) ? [...stop] : undefined;
    if (!stops) {
      throw new TypeError(`Cannot use stop: expected a string or an array of strings, got ${typeof stop}`);
    }
    if (stops.length > 16) {
      throw new RangeError(`Cannot use stop: at most 16 stop strings, got ${stops.length}`);
    }
    for (const s of stops) {
      if (typeof s !== "string") {
        throw new TypeError(`Cannot use stop: every entry must be a string, got ${typeof s}`);
      }
      if (s.length === 0) throw new RangeError("Cannot use stop: a stop string is empty");
    }
    this.#stops = stops;
    this.#hold = stops.reduce((m, s) => Math.max(m, s.length - 1), 0);
  }

  /** Whether there are no stop strings at all. */
  get empty(): boolean {
    return this.#stops.length === 0;
  }

  /** All text so far (cut before the stop string once stopped). */
  get text(): string {
    return this.#text;
  }

  /** Whether `text` contains any of the stop strings. */
  matches(text: string): boolean {
    return this.#stops.some((s) => text.includes(s));
  }

  /** Adds streamed text (ignored once stopped). */
  push(piece: string): void {
    if (this.stopped || piece.length === 0) return;
    this.#text += piece;
    let cut = -1;
    const from = Math.max(0, this.#searchedTo - this.#hold);
    for (const s of this.#stops) {
      const at = this.#text.indexOf(s, from);
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.#text = this.#text.slice(0, cut);
      this.stopped = true;
    }
    this.#searchedTo = this.#text.length;
  }

  /** Marks the end of the text: nothing more can complete a stop string. */
  end(): void {
    this.#ended = true;
  }

  /** Length of the longest tail of the text that is a proper prefix of some stop string. */
  #pendingPrefix(): number {
    let longest = 0;
    for (const stop of this.#stops) {
      for (let n = Math.min(stop.length - 1, this.#text.length); n > longest; n--) {
        if (this.#text.endsWith(stop.slice(0, n))) {
          longest = n;
          break;
        }
      }
    }
    return longest;
  }

  /** The text that is now final and was not taken yet. */
  take(): string {
    let until = this.stopped || this.#ended ? this.#text.length : this.#text.length - this.#pendingPrefix();
    // Never end a piece between the two halves of a surrogate pair.
    const code = this.#text.charCodeAt(until - 1);
    if (until < this.#text.length && code >= 0xd800 && code <= 0xdbff) until--;
    if (until <= this.#emitted) return "";
    const piece = this.#text.slice(this.#emitted, until);
    this.#emitted = until;
    return piece;
  }
}
