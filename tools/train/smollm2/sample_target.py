"""Sample SmolLM2-135M-Instruct (fp32 ONNX, onnxruntime CPU) on the chat prompts of prompts.py with a
batched, KV-cached sampler, and store the target's own continuations with its top-k log-probabilities
(T = 1 log-softmax of the logits) at every generated position: on-policy distillation data for the draft.

  python3 sample_target.py --split train --out /tmp/smollm2_draft/train --max-minutes 35 --seed 1
  python3 sample_target.py --split eval  --out /tmp/smollm2_draft/eval  --topk 256 --seed 7

Rows are (prompt, temperature) jobs: train = every prompt at T = 1.0 and T = 0.7, repeated with new
random draws (round r uses seed*1000+r) until --max-minutes; eval = every eval prompt once at each of
--eval-temps. Each batch of --batch rows is left-padded (pad = 2, position_ids = cumsum(mask) - 1),
prefilled, then decoded token by token for up to --new-tokens tokens; a row stops after it samples an
end token (<|im_end|> = 2 or <|endoftext|> = 0; the end token is kept). One .npz shard per batch:
  ids (int32, all rows' prompt+continuation concatenated), row_off (int64 [n+1]), prompt_len, gen_len,
  temp (float32 [n]), prompt_idx, topk_ids (uint16 [sum gen_len, k]), topk_logp (float16, same),
  (position j of topk_* = the target's distribution over the token at gen offset j of its row).
"""
import argparse, json, os, time
import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer
from prompts import train_prompts, eval_prompts, render

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.abspath(os.path.join(here, '..', '..', '..'))
ap = argparse.ArgumentParser()
ap.add_argument('--split', choices=['train', 'eval'], required=True)
ap.add_argument('--out', required=True)
ap.add_argument('--model', default=os.path.join(root, 'models', 'smollm2-135m-instruct'))
ap.add_argument('--batch', type=int, default=64)
ap.add_argument('--new-tokens', type=int, default=192)
ap.add_argument('--topk', type=int, default=64)
ap.add_argument('--threads', type=int, default=2)
ap.add_argument('--seed', type=int, default=1)
ap.add_argument('--frac-t07', type=float, default=0.3, help='train: share of rows sampled at T = 0.7 (rest T = 1)')
ap.add_argument('--eval-temps', default='0.7,1.0')
ap.add_argument('--max-minutes', type=float, default=30)
ap.add_argument('--max-rounds', type=int, default=100)
args = ap.parse_args()
os.makedirs(args.out, exist_ok=True)

tok = Tokenizer.from_file(os.path.join(args.model, 'tokenizer.json'))
cfg = json.load(open(os.path.join(args.model, 'config.json')))
NL, KVH, HD, V = cfg['num_hidden_layers'], cfg['num_key_value_heads'], cfg['head_dim'], cfg['vocab_size']
so = ort.SessionOptions()
so.intra_op_num_threads = args.threads
so.inter_op_num_threads = 1
sess = ort.InferenceSession(os.path.join(args.model, 'onnx', 'model.onnx'), so, providers=['CPUExecutionProvider'])
out_names = ['logits'] + [f'present.{i}.{kv}' for i in range(NL) for kv in ('key', 'value')]
END = {0, 2}
PAD = 2

prompts = train_prompts() if args.split == 'train' else eval_prompts()
enc = [tok.encode(render(p), add_special_tokens=False).ids for p in prompts]


def jobs():
    if args.split == 'eval':
        temps = [float(t) for t in args.eval_temps.split(',')]
        yield 0, [(i, t) for t in temps for i in range(len(prompts))]
        return
    for r in range(args.max_rounds):
        rng = np.random.default_rng(args.seed * 1000 + r)
        order = rng.permutation(len(prompts))
        temps = np.where(rng.random(len(prompts)) < args.frac_t07, 0.7, 1.0)
        yield r, [(int(i), float(temps[i])) for i in order]


def run_batch(rows, rng):
    B = len(rows)
    plen = [len(enc[i]) for i, _ in rows]
    S = max(plen)
    ids = np.full((B, S), PAD, np.int64)
    mask = np.zeros((B, S), np.int64)
    for b, (i, _) in enumerate(rows):
        ids[b, S - plen[b]:] = enc[i]
        mask[b, S - plen[b]:] = 1
    temps = np.array([t for _, t in rows], np.float32)[:, None]
    feeds = {'input_ids': ids, 'attention_mask': mask, 'position_ids': np.maximum(np.cumsum(mask, 1) - 1, 0)}
    for l in range(NL):
        for kv in ('key', 'value'):
            feeds[f'past_key_values.{l}.{kv}'] = np.zeros((B, KVH, 0, HD), np.float32)
    gen = [[] for _ in range(B)]
    tk_ids = [[] for _ in range(B)]
    tk_lp = [[] for _ in range(B)]
    act = np.arange(B)                      # batch row -> job row (finished rows are dropped from the batch)
    k = args.topk
    for step in range(args.new_tokens):
        outs = sess.run(out_names, feeds)
        logits = outs[0][:, -1, :]                                   # [b, V] float32
        m = logits.max(1, keepdims=True)
        e = np.exp(logits - m)
        c = np.cumsum(e, 1)                                          # T = 1 unnormalised CDF
        lse = m[:, 0] + np.log(c[:, -1])
        t = temps[act, 0]
        for r in np.nonzero(t != 1.0)[0]:                            # other temperatures: their own CDF
            c[r] = np.cumsum(np.exp((logits[r] - m[r]) / t[r]))
        u = rng.random(len(act)) * c[:, -1]
        nxt = np.array([min(int(np.searchsorted(c[r], u[r], side='right')), V - 1) for r in range(len(act))])
        top = np.argpartition(logits, V - k, axis=1)[:, V - k:]
        tlp = np.take_along_axis(logits, top, 1) - lse[:, None]       # T = 1 log-probs (stored)
        o = np.argsort(-tlp, 1)
        top, tlp = np.take_along_axis(top, o, 1), np.take_along_axis(tlp, o, 1)
        done = np.zeros(len(act), bool)
        for r, b in enumerate(act):
            gen[b].append(int(nxt[r]))
            tk_ids[b].append(top[r].astype(np.uint16))
            tk_lp[b].append(tlp[r].astype(np.float16))
            done[r] = int(nxt[r]) in END
        past = outs[1:]
        if done.any():
            keep = np.nonzero(~done)[0]
            if len(keep) == 0:
                break
            act, nxt, mask = act[keep], nxt[keep], mask[keep]
            past = [x[keep] for x in past]
        mask = np.concatenate([mask, np.ones((len(act), 1), np.int64)], 1)
        feeds = {'input_ids': nxt[:, None].astype(np.int64), 'attention_mask': mask,
                 'position_ids': (np.cumsum(mask, 1)[:, -1:] - 1).astype(np.int64)}
        for l in range(NL):
            feeds[f'past_key_values.{l}.key'] = past[2 * l]
            feeds[f'past_key_values.{l}.value'] = past[2 * l + 1]
    return plen, gen, tk_ids, tk_lp


t0 = time.time()
n_tok = 0
shard = 0
stop = False
for r, jl in jobs():
    rng = np.random.default_rng(args.seed * 7919 + r)
    # group by prompt length within chunks of the shuffled list (less padding)
    for s in range(0, len(jl), args.batch):
        rows = jl[s:s + args.batch]
        path = os.path.join(args.out, f'shard_r{r:02d}_{s // args.batch:03d}.npz')
        if os.path.exists(path):            # resumable: skip finished shards (same seeds -> same rows)
            continue
        tb = time.time()
        plen, gen, tk_ids, tk_lp = run_batch(rows, np.random.default_rng([args.seed, r, s]))
        seqs = [enc[i] + g for (i, _), g in zip(rows, gen)]
        off = np.cumsum([0] + [len(x) for x in seqs])
        np.savez(path, ids=np.concatenate(seqs).astype(np.int32), row_off=off.astype(np.int64),
                 prompt_len=np.array(plen, np.int32), gen_len=np.array([len(g) for g in gen], np.int32),
                 temp=np.array([t for _, t in rows], np.float32), prompt_idx=np.array([i for i, _ in rows], np.int32),
                 topk_ids=np.concatenate([np.stack(x) for x in tk_ids]), topk_logp=np.concatenate([np.stack(x) for x in tk_lp]))
        ng = sum(len(g) for g in gen)
        n_tok += ng
        el = time.time() - t0
        print(f'{os.path.basename(path)}: {len(rows)} rows, {ng} tokens in {time.time() - tb:.1f}s; '
              f'total {n_tok} tokens, {el:.0f}s, {n_tok / el:.0f} tok/s', flush=True)
        if el > args.max_minutes * 60:
            stop = True
            break
    if stop:
        break
print(f'done: {n_tok} generated tokens in {time.time() - t0:.0f}s', flush=True)
