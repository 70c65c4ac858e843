/**
 * Private: the one place that names the `@huggingface/tokenizers` package (pinned, pure JS).
 *
 * @module
 */
// deno.json belongs to other modules, so the pinned specifier lives here rather than in its import map.
export { Tokenizer as HfTokenizer } from "npm:@huggingface/tokenizers@0.2.0";
