"""Held-out vs training acceptance of a drafter checkpoint (the same α as train.py's eval, on the
first --rows rows of each split): a large gap means the drafter memorises its 82 K tokens, i.e. more
data is the next lever; no gap means capacity is.
  /usr/bin/python3 gap.py --ckpt /tmp/eagle/ckpt/drafter.pt"""
import argparse, json, sys
sys.argv, argv = sys.argv[:1], sys.argv[1:]
ap = argparse.ArgumentParser()
ap.add_argument('--ckpt', default='/tmp/eagle/ckpt/drafter.pt')
ap.add_argument('--rows', type=int, default=32)
a = ap.parse_args(argv)
sys.argv += ['--steps', '0', '--eval-rows', str(a.rows), '--resume', a.ckpt, '--out', '/tmp/eagle/ckpt/gap_tmp.pt']
exec(open('train.py').read().split("rows, files = load_rows(args.data, args.max_files)")[0])
import torch
prep_rows, _ = load_rows(args.data)
eval_rows, _ = load_rows(args.eval)
model = Drafter(E, d2t)
model.load_state_dict(torch.load(a.ckpt)['state_dict'])
model.eval()
rng2 = np.random.default_rng(0)
train_pick = [prep_rows[i] for i in rng2.choice(len(prep_rows), a.rows, replace=False)]
print('held-out', json.dumps(evaluate(model, eval_rows[:a.rows], 3)))
print('training', json.dumps(evaluate(model, train_pick, 3)))
