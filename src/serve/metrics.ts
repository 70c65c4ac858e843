/**
 * The server's counters, gauge and histograms, rendered in the Prometheus text exposition format
 * (version 0.0.4).
 *
 * @module
 */

/** Upper bounds of the acceptance-rate histogram (fraction of verified draft tokens accepted). */
const ACCEPTANCE_BUCKETS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1];
/** Upper bounds of the block-efficiency histogram (tokens per target call). */
const EFFICIENCY_BUCKETS = [1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8];
/** Upper bounds of the request-latency histogram, seconds. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

class _Histogram {
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(readonly bounds: number[]) {
    this.counts = new Array(bounds.length).fill(0);
  }
  observe(value: number): void {
    if (!Number.isFinite(value)) return;
    this.sum += value;
    this.count++;
    for (let i = 0; i < this.bounds.length; i++) if (value <= this.bounds[i]) this.counts[i]++;
  }
  render(name: string, help: string): string {
    const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`];
    this.bounds.forEach((b, i) => lines.push(`${name}_bucket{le="${b}"} ${this.counts[i]}`));
    lines.push(
      `${name}_bucket{le="+Inf"} ${this.count}`,
      `${name}_sum ${this.sum}`,
      `${name}_count ${this.count}`,
    );
    return lines.join("\n");
  }
}

/**
 * Server metrics: requests by route and status, tokens generated, queue depth, and histograms of
 * acceptance rate, block efficiency and request latency.
 *
 * @example Count a request and render
 * ```ts
 * import assert from "node:assert/strict";
 * import { ServeMetrics } from "./metrics.ts";
 * const metrics = new ServeMetrics();
 * metrics.recordRequest("/v1/completions", 200, 0.12);
 * metrics.tokensGenerated += 16;
 * const text = metrics.render(1);
 * assert.match(text, /spectr_requests_total\{route="\/v1\/completions",status="200"\} 1/);
 * assert.match(text, /spectr_tokens_generated_total 16/);
 * assert.match(text, /spectr_queue_depth 1/);
 * ```
 */
export class ServeMetrics {
  /** Completion tokens generated (including those of aborted requests, as far as they got). */
  tokensGenerated = 0;
  /** Generations aborted by a disconnect, a cancelled stream or a deadline. */
  generationsAborted = 0;
  readonly #requests = new Map<string, number>();
  readonly #acceptance = new _Histogram(ACCEPTANCE_BUCKETS);
  readonly #efficiency = new _Histogram(EFFICIENCY_BUCKETS);
  readonly #latency = new _Histogram(LATENCY_BUCKETS);

  /**
   * Counts one answered request.
   *
   * @param route The matched route (or `other`).
   * @param status The HTTP status.
   * @param latencySeconds Time from receipt to the end of the response body.
   */
  recordRequest(route: string, status: number, latencySeconds: number): void {
    const key = `route="${route}",status="${status}"`;
    this.#requests.set(key, (this.#requests.get(key) ?? 0) + 1);
    this.#latency.observe(latencySeconds);
  }

  /**
   * Records the speculative-decoding quality of one finished generation.
   *
   * @param acceptanceRate Accepted draft tokens / verified draft tokens (NaN: not recorded).
   * @param blockEfficiency Tokens per target call (NaN: not recorded).
   */
  recordGeneration(acceptanceRate: number, blockEfficiency: number): void {
    this.#acceptance.observe(acceptanceRate);
    this.#efficiency.observe(blockEfficiency);
  }

  /** Requests counted for one route and status. */
  requests(route: string, status: number): number {
    return this.#requests.get(`route="${route}",status="${status}"`) ?? 0;
  }

  /**
   * Renders every metric in the Prometheus text format.
   *
   * @param queueDepth Requests waiting or running now.
   * @returns The exposition text, ending in a newline.
   */
  render(queueDepth: number): string {
    const requests = [
      "# HELP spectr_requests_total Requests answered, by route and status.",
      "# TYPE spectr_requests_total counter",
      ...[...this.#requests].map(([labels, n]) => `spectr_requests_total{${labels}} ${n}`),
    ];
    return [
      requests.join("\n"),
      "# HELP spectr_tokens_generated_total Completion tokens generated.\n# TYPE spectr_tokens_generated_total counter\n" +
      `spectr_tokens_generated_total ${this.tokensGenerated}`,
      "# HELP spectr_generations_aborted_total Generations aborted by a disconnect or a deadline.\n" +
      `# TYPE spectr_generations_aborted_total counter\nspectr_generations_aborted_total ${this.generationsAborted}`,
      "# HELP spectr_queue_depth Requests waiting or running.\n# TYPE spectr_queue_depth gauge\n" +
      `spectr_queue_depth ${queueDepth}`,
      this.#acceptance.render(
        "spectr_acceptance_rate",
        "Accepted draft tokens over verified draft tokens, per speculative generation.",
      ),
      this.#efficiency.render(
        "spectr_block_efficiency",
        "Tokens per target call, per speculative generation.",
      ),
      this.#latency.render("spectr_request_duration_seconds", "Request latency, receipt to end of body."),
    ].join("\n") + "\n";
  }
}
