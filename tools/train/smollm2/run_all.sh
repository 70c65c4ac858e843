#!/bin/sh
# models/smollm2-draft: on-policy distilled draft for models/smollm2-135m-instruct (see models/README.md,
# section "SmolLM2 draft"). Every command of the recorded run, in order. Run from anywhere; large
# intermediate data goes to /tmp/smollm2_draft (never into the repo). Logs of the recorded run: logs/.
# Needs: pyenv python3 with `pip install onnxruntime onnx onnxsim==0.4.36 numpy tokenizers`
#   (recorded: onnxruntime 1.32.0, onnx 1.17.0, onnxsim 0.4.36, numpy 2.4.6, tokenizers 0.23.3);
#   Debian /usr/bin/python3 with `apt-get install -y python3-torch libopenblas0-pthread python3-numpy`
#   (torch 1.13); deno; the target folder models/smollm2-135m-instruct (`deno task model:smollm2`).
# Seeds fix prompts, temperatures and every random draw; the sampler is resumable (a shard per batch,
# seeded by (seed, round, batch)). Not bit-exact across machines: the sampler and the trainer are
# time-limited (--max-minutes decides how many shards / steps, and the trainer's LR follows
# max(step/steps, elapsed/max-minutes)), and the recorded run sampled concurrently with training.
set -e
cd "$(dirname "$0")"
W=/tmp/smollm2_draft
mkdir -p $W/logs $W/ckpt
export OPENBLAS_NUM_THREADS=1
# 1. held-out eval data: 32 eval prompts x {T 0.7, T 1.0}, 128 new tokens, target top-256 log-probs (47 s)
python3 sample_target.py --split eval --out $W/eval --topk 256 --new-tokens 128 --seed 7 > $W/logs/sample_eval.log 2>&1
# 2. training data: the 665 training prompts per round (30 % of rows T = 0.7, 70 % T = 1.0, new draws each
#    round), up to 192 new tokens, top-64 log-probs, 64 rows per batch. Recorded: 2 threads for 23 min
#    (13 shards), then restarted (resumes at the next shard) with 1 thread at nice 5 for 27 min while
#    step 4 trained; 21 shards, 1,305 rows, 203,819 tokens in all.
python3 sample_target.py --split train --out $W/train --max-minutes 23 --seed 1 > $W/logs/sample_train.log 2>&1
nice -n 5 python3 sample_target.py --split train --out $W/train --max-minutes 27 --seed 1 --threads 1 \
  >> $W/logs/sample_train.log 2>&1 &
# 3. head vocabulary (K = 6144 most probable target tokens in the first 6 shards, 60,110 tokens) and
#    PCA(256) of the target's token_embd as the initial (tied) embedding/head
python3 prep.py --data $W/train --max-files 6 --k 6144 --d 256 --out $W/init.npz
# 4. distillation: KL to the target's top-64 distribution at every generated position; picks up the
#    shards step 2 is still writing every 100 steps (recorded: 922 steps in 40 min)
/usr/bin/python3 train_draft.py --init $W/init.npz --steps 3000 --batch 12 --lr 3e-3 --warmup 40 \
  --eval-every 150 --reload-every 100 --max-minutes 40 --seed 1234 --out $W/ckpt/draft.pt > $W/logs/train.log 2>&1
wait
# 4b. second stage (shipped): from stage 1 on all 203,819 tokens, lower LR, 9 min (189 steps)
/usr/bin/python3 train_draft.py --init $W/init.npz --resume $W/ckpt/draft.pt --steps 3000 --batch 12 --lr 1e-3 \
  --warmup 20 --eval-every 150 --reload-every 0 --max-minutes 9 --seed 4321 --out $W/ckpt/draft_stage2.pt \
  > $W/logs/train_stage2.log 2>&1
# 5. export (+ config/tokenizer files, reference logits), onnxsim + onnx.checker, held-out evaluation,
#    ONNX-vs-PyTorch verification, latency and generation through the repo
/usr/bin/python3 export_draft.py --ckpt $W/ckpt/draft_stage2.pt
python3 ../simplify.py --dir ../../../models/smollm2-draft
/usr/bin/python3 evaluate.py --ckpt $W/ckpt/draft_stage2.pt > $W/logs/evaluate_stage2.log 2>&1
deno run -A verify_draft.ts
deno run -A check_repo.ts > $W/logs/check_repo_stage2.log 2>&1
