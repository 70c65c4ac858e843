#!/bin/sh
# Exact, seeded pipeline used for models/ (see models/README.md). Run from anywhere.
# Needs: apt-get install -y python3-torch python3-onnx libopenblas0-pthread ; pyenv python3 with `tokenizers`
# (pip install tokenizers) ; deno (for verify_onnx.ts).
set -e
cd "$(dirname "$0")"
mkdir -p logs
export OPENBLAS_NUM_THREADS=1
nice -n 19 python3 tokenize_data.py                       # pyenv python3 (tokenizers)
nice -n 19 /usr/bin/python3 train.py draft  --steps 750 --batch 8 --lr 5e-3 --warmup 30 --eval-every 375 \
  --seed 1234 --max-minutes 9 > logs/draft.log 2>&1
nice -n 19 /usr/bin/python3 train.py target --steps 440 --batch 8 --lr 2e-3 --warmup 30 --eval-every 220 \
  --seed 1234 --max-minutes 40 > logs/target.log 2>&1
cp ckpt/target.pt ckpt/target_stage1.pt                   # second stage: 600 more steps from stage 1
nice -n 10 /usr/bin/python3 train.py target --init ckpt/target_stage1.pt --steps 600 --batch 8 --lr 1e-3 \
  --warmup 20 --eval-every 300 --seed 4321 --max-minutes 24 --out ckpt/target.pt > logs/target_stage2.log 2>&1
cp ckpt/target.pt ckpt/target_stage2.pt                   # third stage: 800 more steps from stage 2
nice -n 5 /usr/bin/python3 train.py target --init ckpt/target_stage2.pt --steps 800 --batch 8 --lr 8e-4 \
  --warmup 20 --eval-every 200 --seed 999 --max-minutes 40 --out ckpt/target.pt > logs/target_stage3.log 2>&1
cp ckpt/draft.pt ckpt/draft_stage1.pt                     # draft, second stage: 1500 more steps
nice -n 5 /usr/bin/python3 train.py draft --init ckpt/draft_stage1.pt --steps 1500 --batch 8 --lr 3e-3 \
  --warmup 20 --eval-every 500 --seed 777 --max-minutes 20 --out ckpt/draft.pt > logs/draft_stage2.log 2>&1
nice -n 19 /usr/bin/python3 export.py target
nice -n 19 /usr/bin/python3 export.py draft
python3 simplify.py draft                                 # pyenv python3 with onnx + onnxsim 0.8.1
nice -n 19 /usr/bin/python3 sample.py target --prompt "Once upon a time" --seed 1234 --n 3
nice -n 19 deno run -A verify_onnx.ts
