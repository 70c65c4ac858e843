"""Training of the feature drafter (Debian /usr/bin/python3 with torch + OpenBLAS).

Data: sample.py shards (the target's own answers with its features at every position and its top-k
T = 1 log-probs at every answer position). Objective: at every answer position and every unrolled depth
s = 0..--ttt-1 (training-time test, model.py), cross-entropy of the drafter's draft-vocabulary
distribution q against the target's stored top-k probabilities p (= KL(p || q) up to p's entropy; top-k
tokens outside the draft vocabulary are dropped, q is 0 there), depth s weighted --depth-decay^s.
Held-out acceptance α = Σ min(p_T, q_T) over the eval shards' stored top-k (a lower bound: the tail
beyond top-k is left out), per depth, at T = 1 and 0.7, and the greedy match argmax q = argmax p.
LR: linear warm-up then cosine to --min-lr-frac by progress = max(step/steps, elapsed/max-minutes).
Resumable: --resume CKPT continues weights, optimiser and step.
  /usr/bin/python3 train.py --data /tmp/eagle/train --eval /tmp/eagle/eval --prep /tmp/eagle/prep.npz \
      --steps 2000 --max-minutes 30 --out /tmp/eagle/ckpt/drafter.pt
"""
import argparse, glob, json, math, os, sys, time
import numpy as np
import torch
from model import Drafter, rms

ap = argparse.ArgumentParser()
ap.add_argument('--data', default='/tmp/eagle/train')
ap.add_argument('--eval', default='/tmp/eagle/eval')
ap.add_argument('--prep', default='/tmp/eagle/prep.npz')
ap.add_argument('--out', default='/tmp/eagle/ckpt/drafter.pt')
ap.add_argument('--resume', default=None)
ap.add_argument('--max-files', type=int, default=0, help='train on the first N shards only (learning curve)')
ap.add_argument('--steps', type=int, default=2000)
ap.add_argument('--batch', type=int, default=8, help='rows per step')
ap.add_argument('--max-len', type=int, default=256, help='positions per row (longer rows: a random window)')
ap.add_argument('--ttt', type=int, default=3, help='unrolled depths (training-time test)')
ap.add_argument('--depth-decay', type=float, default=0.8)
ap.add_argument('--reg', type=float, default=0.0, help='weight of the feature regression (EAGLE-1): the drafter head input '
                'rms(g)*norm against the target head input rms(h29)*onorm of the next position, smooth L1')
ap.add_argument('--lr', type=float, default=1e-3)
ap.add_argument('--min-lr-frac', type=float, default=0.05)
ap.add_argument('--warmup', type=int, default=50)
ap.add_argument('--wd', type=float, default=0.0)
ap.add_argument('--seed', type=int, default=1234)
ap.add_argument('--threads', type=int, default=2)
ap.add_argument('--eval-every', type=int, default=200)
ap.add_argument('--log-every', type=int, default=10)
ap.add_argument('--eval-rows', type=int, default=64)
ap.add_argument('--epochs-order', action='store_true',
                help='batches walk a fresh permutation of the rows each epoch (no row twice before all are seen; '
                     'evals report the unique answer tokens seen: a one-pass learning curve)')
ap.add_argument('--eval-every-frac', type=float, default=0,
                help='with --epochs-order: evaluate every this fraction of an epoch (overrides --eval-every)')
ap.add_argument('--reload-every', type=int, default=0, help='pick up new shards every N steps (sampling still running)')
ap.add_argument('--max-minutes', type=float, default=0)
ap.add_argument('--init-layer', default=None,
                help="start the drafter's decoder layer from a target layer (target_layer.py's npz) instead of noise")
ap.add_argument('--continue-schedule', action='store_true',
                help="with --resume: continue the checkpoint's LR schedule (its minutes count toward --max-minutes)")
args = ap.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)
rng = np.random.default_rng(args.seed)

prep = np.load(args.prep)
E = torch.from_numpy(prep['E'])
d2t = torch.from_numpy(prep['d2t'].astype(np.int64))
K = len(d2t)
t2d = torch.full((E.shape[0],), -1, dtype=torch.long)
t2d[d2t] = torch.arange(K)


def load_rows(folder, max_files=0):
    rows = []
    files = sorted(glob.glob(os.path.join(folder, 'shard_*.npz')))[:max_files or None]
    for f in files:
        z = np.load(f)
        d = {k: z[k] for k in z.files}                    # read each array once (npz access decompresses anew)
        o, pl, gl = d['row_off'], d['prompt_len'], d['gen_len']
        fo = 0
        go = 0
        for b in range(len(pl)):
            n = int(o[b + 1] - o[b])
            rows.append(dict(ids=d['ids'][o[b]:o[b + 1]].astype(np.int64), plen=int(pl[b]), temp=float(d['temp'][b]),
                             feats=d['feats'][fo:fo + n - 1], tk_ids=d['topk_ids'][go:go + gl[b]].astype(np.int64),
                             tk_lp=d['topk_logp'][go:go + gl[b]].astype(np.float32)))
            fo += n - 1
            go += int(gl[b])
    return rows, files


def make_batch(rows, max_len, rng=None):
    """Right-padded batch: feats [B,T,F], toks [B,T] (x_{i+1}), valid [B,T], target (ids, p) [B,T,k] for
    position i = p(x_{i+2}), has_target [B,T]."""
    B = len(rows)
    wins = []
    for r in rows:
        n = len(r['ids']) - 1                     # positions with features
        lo = 0
        if n > max_len:                           # window that keeps answer positions
            lo = int(rng.integers(0, n - max_len + 1)) if rng is not None else n - max_len
        wins.append((lo, min(n, lo + max_len)))
    T = max(hi - lo for lo, hi in wins)
    Fd = rows[0]['feats'].shape[1]
    k = rows[0]['tk_ids'].shape[1]
    feats = torch.zeros(B, T, Fd)
    toks = torch.zeros(B, T, dtype=torch.long)
    valid = torch.zeros(B, T, dtype=torch.bool)
    tid = torch.zeros(B, T, k, dtype=torch.long)
    tlp = torch.full((B, T, k), -1e4)
    has = torch.zeros(B, T, dtype=torch.bool)
    nxt = torch.zeros(B, T, Fd // 3)
    for b, (r, (lo, hi)) in enumerate(zip(rows, wins)):
        m = hi - lo
        feats[b, :m] = torch.from_numpy(r['feats'][lo:hi].astype(np.float32))
        toks[b, :m] = torch.from_numpy(r['ids'][lo + 1:hi + 1])
        valid[b, :m] = True
        top = r['feats'][lo + 1:hi + 1, 2 * (Fd // 3):]          # h29 of position i + 1 (where it exists)
        nxt[b, :len(top)] = torch.from_numpy(top.astype(np.float32))
        # position i (absolute) has a target when x_{i+2} is an answer token: offset j = i + 2 - plen in [0, gen)
        for i in range(max(lo, r['plen'] - 2), min(hi, len(r['ids']) - 2)):
            j = i + 2 - r['plen']
            tid[b, i - lo] = torch.from_numpy(r['tk_ids'][j])
            tlp[b, i - lo] = torch.from_numpy(r['tk_lp'][j])
            has[b, i - lo] = True
    return feats, toks, valid, tid, tlp, has, nxt


def depth_losses(model, batch, steps):
    """Per depth s: the draft-vocabulary logits at the positions with a target (depth s needs i >= s),
    [n_s, K], and those positions' target slots / probabilities."""
    feats, toks, valid, tid, tlp, has, nxt = batch
    outs = model.unrolled(feats, toks, valid, steps)
    res = []
    for s, g in enumerate(outs):
        m = has.clone()
        m[:, :s] = False
        slot = t2d[tid[m]]                                 # [n, k] draft slot or -1
        res.append((model.head_logits(g[m]), slot, tlp[m], tid[m], g[m], nxt[m]))
    return res


def train_loss(model, batch, steps):
    total, parts, wsum = 0.0, [], 0.0
    for s, (logits, slot, lp, _, g, h) in enumerate(depth_losses(model, batch, steps)):
        p = torch.exp(lp).masked_fill(slot < 0, 0.0)
        lq = torch.gather(torch.log_softmax(logits, -1), -1, slot.clamp(min=0))
        l = -(p * lq).sum(-1).mean()
        if args.reg:
            ok = h.abs().sum(-1) > 0                       # the last position of a row has no next feature
            if ok.any():
                l = l + args.reg * torch.nn.functional.smooth_l1_loss(rms(g[ok]) * model.norm, rms(h[ok]) * ONORM)
        w = args.depth_decay ** s
        total = total + w * l
        wsum += w
        parts.append(float(l))
    return total / wsum, parts


@torch.no_grad()
def evaluate(model, rows, steps):
    """α per depth at T = 1 and 0.7 (over stored top-k) and greedy match, over eval rows."""
    acc = {1.0: np.zeros(steps), 0.7: np.zeros(steps)}
    greedy = np.zeros(steps)
    count = np.zeros(steps)
    for i in range(0, len(rows), 8):
        batch = make_batch(rows[i:i + 8], 10 ** 9)
        for s, (logits, slot, lp, tid, _, _) in enumerate(depth_losses(model, batch, steps)):
            inv = slot < 0
            for T in (1.0, 0.7):
                # T = 1: the stored log-probs themselves; T < 1: re-warped over the top-k (tail ≈ 0)
                pT = torch.exp(lp) if T == 1.0 else torch.softmax(lp / T, -1)
                q_t = torch.gather(torch.softmax(logits / T, -1), -1, slot.clamp(min=0)).masked_fill(inv, 0.0)
                acc[T][s] += float(torch.minimum(pT, q_t).sum())
            greedy[s] += float((d2t[logits.argmax(-1)] == tid[:, 0]).sum())
            count[s] += len(slot)
    return {'alpha_t1': (acc[1.0] / count).round(4).tolist(), 'alpha_t07': (acc[0.7] / count).round(4).tolist(),
            'greedy': (greedy / count).round(4).tolist(), 'positions': int(count[0])}


rows, files = load_rows(args.data, args.max_files)
eval_rows, _ = load_rows(args.eval)
eval_rows = eval_rows[:args.eval_rows]
n_answer = sum(len(r['tk_ids']) for r in rows)
print(f'train: {len(files)} shards, {len(rows)} rows, {n_answer} answer tokens; eval: {len(eval_rows)} rows', flush=True)

model = Drafter(E, d2t)
ONORM = torch.from_numpy(prep['onorm']) if 'onorm' in prep.files else torch.ones(E.shape[1])
with torch.no_grad():
    model.norm.copy_(ONORM)
    if args.init_layer:
        lay = np.load(args.init_layer)
        for key in ['q', 'k', 'v', 'o', 'gate', 'up', 'down']:
            getattr(model, key).weight.copy_(torch.from_numpy(lay[key]))
        model.input_norm.copy_(torch.from_numpy(lay['input_norm']))
        model.post_norm.copy_(torch.from_numpy(lay['post_norm']))
        print(f'decoder layer initialised from {args.init_layer}', flush=True)
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, betas=(0.9, 0.95),
                        weight_decay=args.wd)
step = 0
prior_minutes = 0.0
if args.resume:
    ck = torch.load(args.resume)
    model.load_state_dict(ck['state_dict'])
    opt.load_state_dict(ck['opt'])
    step = ck['step']
    if args.continue_schedule:
        prior_minutes = ck.get('minutes', 0.0)
print(f'drafter: {sum(p.numel() for p in model.parameters()):,} trainable params, K={K}', flush=True)
os.makedirs(os.path.dirname(args.out), exist_ok=True)


def save(tag=''):
    torch.save({'state_dict': model.state_dict(), 'opt': opt.state_dict(), 'step': step, 'args': vars(args),
                'minutes': prior_minutes + (time.time() - t0) / 60},
               args.out + tag)


t0 = time.time()
best = -1.0
order, cursor, seen_rows, seen_tokens = None, 0, set(), 0
if args.epochs_order and args.eval_every_frac:
    args.eval_every = max(1, round(args.eval_every_frac * len(rows) / args.batch))
    print(f'eval every {args.eval_every} steps ({args.eval_every_frac} of an epoch of {len(rows)} rows)', flush=True)
last_eval = None
while step < args.steps:
    el = prior_minutes + (time.time() - t0) / 60
    prog = max(step / args.steps, el / args.max_minutes if args.max_minutes else 0)
    if prog >= 1:
        break
    lr = args.lr * min(1, (step + 1) / args.warmup) * (args.min_lr_frac + (1 - args.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * prog)))
    for g in opt.param_groups:
        g['lr'] = lr
    if args.reload_every and step and step % args.reload_every == 0:
        rows, files = load_rows(args.data, args.max_files)
    if args.epochs_order:
        if order is None or cursor + args.batch > len(order):
            order, cursor = rng.permutation(len(rows)), 0
        pick = order[cursor:cursor + args.batch]
        cursor += args.batch
        for i in pick:
            if int(i) not in seen_rows:
                seen_rows.add(int(i))
                seen_tokens += len(rows[i]['tk_ids'])
    else:
        pick = rng.choice(len(rows), args.batch, replace=False)
    batch = make_batch([rows[i] for i in pick], args.max_len, rng)
    loss, parts = train_loss(model, batch, args.ttt)
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    step += 1
    if step % args.log_every == 0:
        print(f'step {step} lr {lr:.2e} loss {float(loss):.4f} depths {[round(x, 3) for x in parts]} '
              f'{time.time() - t0:.0f}s', flush=True)
    if step % args.eval_every == 0:
        model.eval()
        last_eval = evaluate(model, eval_rows, args.ttt)
        model.train()
        print(f'eval step {step}: {json.dumps(last_eval)}'
              + (f' unique rows {len(seen_rows)}/{len(rows)}, answer tokens {seen_tokens}' if args.epochs_order else ''),
              flush=True)
        save()
        score = sum(last_eval['alpha_t1']) + sum(last_eval['alpha_t07'])
        if score > best:
            best = score
            save('.best')
            print(f'best so far: step {step}', flush=True)
model.eval()
last_eval = evaluate(model, eval_rows, args.ttt)
print(f'final step {step} ({time.time() - t0:.0f}s, {len(rows)} rows, {n_answer} answer tokens): {json.dumps(last_eval)}', flush=True)
save()
