#!/bin/sh
# models/smollm2-eagle: the feature drafter of models/smollm2-135m-instruct (see models/README.md, section
# "SmolLM2 feature drafter", and docs/eagle_drafter.md). Every command of the recorded run, in order, from
# this folder. Large data goes to /tmp/eagle (never into the repo); the sampled token ids are committed
# under ids/ (ids.py) so a later session can recompute features with refeature.py instead of sampling.
# Needs: pyenv python3 with `pip install onnxruntime numpy tokenizers gguf`; Debian /usr/bin/python3 with
#   `apt-get install -y python3-torch libopenblas0-pthread python3-numpy` (torch 1.13); the target folder
#   with hidden-state outputs (`deno task model:smollm2`).
# Seeds fix prompts, temperatures and every random draw. Sampling is resumable (one shard per batch of
# rows, skipped when present) and time-limited (--max-minutes), so the number of shards depends on the
# machine's load; the recorded run's counts are in models/README.md.
set -e
cd "$(dirname "$0")"
W=/tmp/eagle
mkdir -p $W/logs $W/ckpt
# 1. held-out eval data: the 32 eval prompts x {T 0.7, T 1.0}, 128 new tokens, q8 graph (what cpu users run)
python3 sample.py --split eval --out $W/eval --graph model_quantized.onnx --batch 32 --new-tokens 128 --seed 7 \
  > $W/logs/sample_eval.log 2>&1
# 2. training data: the 785 training prompts per round (half the rows T = 0.7, half T = 1), up to 192 new
#    tokens, fp32 graph (faster than q8 at 48 rows on onnxruntime CPU), top-64 log-probs and features
python3 sample.py --split train --out $W/train --graph model.onnx --batch 48 --new-tokens 192 --seed 1 \
  --max-minutes 150 > $W/logs/sample_train.log 2>&1
#    then the human-written prompts (IFEval 541 + Alpaca seed tasks 175, prompts/SOURCE.md), rounds x00.. until
#    the time limit (session 7: round r00 completed, then x00-x03 shard 012: 75 shards, 473,878 answer tokens)
python3 sample.py --split train --out $W/train --graph model.onnx --batch 48 --new-tokens 192 --seed 3 \
  --max-minutes 70 --prompt-file prompts/ifeval.json --prompt-file prompts/alpaca_seed.json >> $W/logs/sample_train.log 2>&1
# 3. draft vocabulary (8,192 tokens by target mass in the training shards) and the Q8_0 embedding
python3 prep.py --data $W/train --k 8192 --out $W/prep.npz
# 4. check: the unrolled training forward equals cached drafting
/usr/bin/python3 check_ttt.py
# 5. training (see models/README.md for the recorded arguments and losses)
#    (session 7: from scratch on all 75 shards, rows in epoch order, held-out eval every quarter epoch = the
#    one-pass learning curve, 40 minutes)
OPENBLAS_NUM_THREADS=2 /usr/bin/python3 train.py --data $W/train --eval $W/eval --prep $W/prep.npz \
  --steps 1000000 --max-minutes 40 --batch 8 --lr 2e-3 --warmup 20 --ttt 3 --epochs-order --eval-every-frac 0.25 \
  --seed 1234 --threads 2 --out $W/ckpt/drafter.pt > $W/logs/train.log 2>&1
# 6. export + ids, then the graphs (models/smollm2-eagle/onnx) and the repo's checks
/usr/bin/python3 export.py --ckpt $W/ckpt/drafter.pt --prep $W/prep.npz
python3 ids.py --data $W/train --out ids/train.npz
python3 ids.py --data $W/eval --out ids/eval.npz
(cd ../../.. && npx -y deno@2.9.6 task model:smollm2)
