"""On-policy data for the feature drafter (models/smollm2-eagle): SmolLM2-135M-Instruct (the q8 graph
users run on cpu, onnxruntime CPU) samples its own answers to the chat prompts of ../smollm2/prompts.py
with a batched, KV-cached sampler; every forward also returns the target features the drafter reads
(graph outputs hidden_states.2/.15/.29, see docs/eagle_drafter.md), so sampling and feature extraction
are one pass.

  python3 sample.py --split train --out /tmp/eagle/train --max-minutes 60 --seed 1
  python3 sample.py --split eval  --out /tmp/eagle/eval  --seed 7

Rows are (prompt, temperature) jobs: train = every training prompt per round (share --frac-t07 of rows at
T = 0.7, the rest T = 1), round r reshuffled with seed*1000+r; eval = the held-out eval prompts once at
each of --eval-temps. Each batch of --batch rows is left-padded (pad 2, position_ids = cumsum(mask) - 1),
prefilled, then decoded for up to --new-tokens tokens; a row stops after an end token (<|im_end|> = 2,
<|endoftext|> = 0; kept). Resumable: one .npz shard per batch, skipped when it exists (same seeds ->
same rows). A shard holds
  ids int32 (rows' prompt+answer concatenated), row_off int64 [n+1], prompt_len, gen_len int32 [n],
  temp float32 [n], prompt_idx int32 [n],
  feats float16 [sum(len_r - 1), 1728]: the target features of positions 0..len_r-2 of each row,
  topk_ids uint16 / topk_logp float16 [sum gen_len, k]: the target's T = 1 top-k log-probs of the
  token at answer offset j of each row (from the position before it).
Token ids alone (ids/row_off/...) are enough to recompute everything: tools/train/smollm2_eagle/ids/.
"""
import argparse, json, os, sys, time
import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, '..', 'smollm2'))
from prompts import train_prompts, eval_prompts, render  # noqa: E402

root = os.path.abspath(os.path.join(here, '..', '..', '..'))
ap = argparse.ArgumentParser()
ap.add_argument('--split', choices=['train', 'eval'], required=True)
ap.add_argument('--out', required=True)
ap.add_argument('--model', default=os.path.join(root, 'models', 'smollm2-135m-instruct'))
ap.add_argument('--graph', default='model_quantized.onnx')
ap.add_argument('--batch', type=int, default=32)
ap.add_argument('--new-tokens', type=int, default=192)
ap.add_argument('--topk', type=int, default=64)
ap.add_argument('--threads', type=int, default=2)
ap.add_argument('--seed', type=int, default=1)
ap.add_argument('--frac-t07', type=float, default=0.5)
ap.add_argument('--eval-temps', default='0.7,1.0')
ap.add_argument('--max-minutes', type=float, default=30)
ap.add_argument('--max-rounds', type=int, default=100)
ap.add_argument('--max-shards', type=int, default=100000)
ap.add_argument('--max-prompt-tokens', type=int, default=192, help='with --prompt-file: longer prompts are left out')
ap.add_argument('--prompt-file', action='append', default=[],
                help='JSON array of user prompts (repeatable); the train split then samples these instead of '
                     'prompts.py\'s, into shards named shard_x<round>_<batch>.npz')
args = ap.parse_args()
os.makedirs(args.out, exist_ok=True)

LAYERS = [2, 15, 29]
tok = Tokenizer.from_file(os.path.join(args.model, 'tokenizer.json'))
cfg = json.load(open(os.path.join(args.model, 'config.json')))
NL, KVH, HD, V = cfg['num_hidden_layers'], cfg['num_key_value_heads'], cfg['head_dim'], cfg['vocab_size']
so = ort.SessionOptions()
so.intra_op_num_threads = args.threads
so.inter_op_num_threads = 1
sess = ort.InferenceSession(os.path.join(args.model, 'onnx', args.graph), so, providers=['CPUExecutionProvider'])
hid_names = [f'hidden_states.{l}' for l in LAYERS]
out_names = ['logits'] + hid_names + [f'present.{i}.{kv}' for i in range(NL) for kv in ('key', 'value')]
NH = len(hid_names)
END = {0, 2}
PAD = 2

if args.prompt_file:
    if args.split != 'train':
        sys.exit('--prompt-file is for the train split')
    prompts = [p for f in args.prompt_file for p in json.load(open(f))]
    held_out = set(eval_prompts())
    assert not held_out & set(prompts), 'a --prompt-file prompt is an eval prompt'
else:
    prompts = train_prompts(passages=True) if args.split == 'train' else eval_prompts()
PREFIX = 'x' if args.prompt_file else 'r'
enc = [tok.encode(render(p), add_special_tokens=False).ids for p in prompts]
if args.prompt_file:                       # a long prompt would pad every row of its batch to its length
    keep = [i for i, e in enumerate(enc) if len(e) <= args.max_prompt_tokens]
    print(f'{len(prompts)} prompts from {args.prompt_file}, {len(keep)} of at most {args.max_prompt_tokens} tokens kept',
          flush=True)
    prompts, enc = [prompts[i] for i in keep], [enc[i] for i in keep]


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


def feats_of(outs):
    return np.concatenate([outs[1 + j] for j in range(NH)], -1).astype(np.float16)  # [b, s, 1728]


def run_batch(rows, rng):
    B = len(rows)
    plen = [len(enc[i]) for i, _ in rows]
    S = max(plen)
    ids = np.full((B, S), PAD, np.int64)
    mask = np.zeros((B, S), np.int64)
    for b, (i, _) in enumerate(rows):
        ids[b, S - plen[b]:] = enc[i]
        mask[b, S - plen[b]:] = 1
    temps = np.array([t for _, t in rows], np.float32)
    feeds = {'input_ids': ids, 'attention_mask': mask, 'position_ids': np.maximum(np.cumsum(mask, 1) - 1, 0)}
    for l in range(NL):
        for kv in ('key', 'value'):
            feeds[f'past_key_values.{l}.{kv}'] = np.zeros((B, KVH, 0, HD), np.float32)
    gen = [[] for _ in range(B)]
    feats = [[] for _ in range(B)]
    tk_ids = [[] for _ in range(B)]
    tk_lp = [[] for _ in range(B)]
    act = np.arange(B)
    k = args.topk
    first = True
    for step in range(args.new_tokens):
        outs = sess.run(out_names, feeds)
        f = feats_of(outs)
        for r, b in enumerate(act):
            feats[b].append(f[r, S - plen[b]:] if first else f[r])
        first = False
        logits = outs[0][:, -1, :]
        m = logits.max(1, keepdims=True)
        z = logits - m
        t = temps[act]
        e1 = np.exp(z)
        lse = m[:, 0] + np.log(e1.sum(1, dtype=np.float64)).astype(np.float32)
        w = np.where((t == 1.0)[:, None], e1, np.exp(z / t[:, None]))
        c = np.cumsum(w, 1, dtype=np.float64)
        u = rng.random(len(act)) * c[:, -1]
        nxt = np.array([min(int(np.searchsorted(c[r], u[r], side='right')), V - 1) for r in range(len(act))])
        top = np.argpartition(logits, V - k, axis=1)[:, V - k:]
        tlp = np.take_along_axis(logits, top, 1) - lse[:, None]
        o = np.argsort(-tlp, 1)
        top, tlp = np.take_along_axis(top, o, 1), np.take_along_axis(tlp, o, 1)
        done = np.zeros(len(act), bool)
        for r, b in enumerate(act):
            gen[b].append(int(nxt[r]))
            tk_ids[b].append(top[r].astype(np.uint16))
            tk_lp[b].append(tlp[r].astype(np.float16))
            done[r] = int(nxt[r]) in END
        past = outs[1 + NH:]
        if done.any():
            keep = np.nonzero(~done)[0]
            if len(keep) == 0:
                break
            act, nxt, mask = act[keep], nxt[keep], mask[keep]
            past = [x[keep] for x in past]
        if step == args.new_tokens - 1:
            break
        mask = np.concatenate([mask, np.ones((len(act), 1), np.int64)], 1)
        feeds = {'input_ids': nxt[:, None].astype(np.int64), 'attention_mask': mask,
                 'position_ids': (np.cumsum(mask, 1)[:, -1:] - 1).astype(np.int64)}
        for l in range(NL):
            feeds[f'past_key_values.{l}.key'] = past[2 * l]
            feeds[f'past_key_values.{l}.value'] = past[2 * l + 1]
    # features of positions 0..len-2 (the last token is never fed)
    fr = []
    for b in range(B):
        x = np.concatenate(feats[b], 0)
        fr.append(x[:plen[b] + len(gen[b]) - 1])
    return plen, gen, fr, tk_ids, tk_lp


t0 = time.time()
n_tok = 0
n_shards = 0
stop = False
for r, jl in jobs():
    rng_r = r
    for s in range(0, len(jl), args.batch):
        rows = jl[s:s + args.batch]
        path = os.path.join(args.out, f'shard_{PREFIX}{r:02d}_{s // args.batch:03d}.npz')
        if os.path.exists(path):
            continue
        tb = time.time()
        plen, gen, fr, tk_ids, tk_lp = run_batch(rows, np.random.default_rng([args.seed, r, s]))
        seqs = [enc[i] + g for (i, _), g in zip(rows, gen)]
        off = np.cumsum([0] + [len(x) for x in seqs])
        tmp = path + '.tmp.npz'
        np.savez(tmp, ids=np.concatenate(seqs).astype(np.int32), row_off=off.astype(np.int64),
                 prompt_len=np.array(plen, np.int32), gen_len=np.array([len(g) for g in gen], np.int32),
                 temp=np.array([t for _, t in rows], np.float32), prompt_idx=np.array([i for i, _ in rows], np.int32),
                 feats=np.concatenate(fr), topk_ids=np.concatenate([np.stack(x) for x in tk_ids]),
                 topk_logp=np.concatenate([np.stack(x) for x in tk_lp]))
        os.replace(tmp, path)
        ng = sum(len(g) for g in gen)
        n_tok += ng
        n_shards += 1
        el = time.time() - t0
        print(f'{os.path.basename(path)}: {len(rows)} rows, {ng} tokens in {time.time() - tb:.1f}s; '
              f'total {n_tok} tokens, {el:.0f}s, {n_tok / el:.1f} tok/s', flush=True)
        if el > args.max_minutes * 60 or n_shards >= args.max_shards:
            stop = True
            break
    if stop:
        break
print(f'done: {n_tok} generated tokens in {time.time() - t0:.0f}s', flush=True)
