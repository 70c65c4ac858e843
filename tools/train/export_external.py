"""Tiny fixture with external data: the fp32 variant (src/model/testdata/variants/onnx/model.onnx),
re-saved with every initializer in one external file, as exporters do for models over 2 GB.

Writes src/model/testdata/external/: config.json (copied), onnx/model.onnx (graph only) and
onnx/model.onnx_data (the weights). Needs the `onnx` package (pyenv python3: `pip install onnx`).
Run from the repo root: `python3 tools/train/export_external.py`.
"""
import os
import shutil

import onnx

SRC = "src/model/testdata/variants"
DST = "src/model/testdata/external"

os.makedirs(f"{DST}/onnx", exist_ok=True)
shutil.copy(f"{SRC}/config.json", f"{DST}/config.json")
model = onnx.load(f"{SRC}/onnx/model.onnx")
for name in ("model.onnx", "model.onnx_data"):
    if os.path.exists(f"{DST}/onnx/{name}"):
        os.remove(f"{DST}/onnx/{name}")
onnx.save_model(
    model,
    f"{DST}/onnx/model.onnx",
    save_as_external_data=True,
    all_tensors_to_one_file=True,
    location="model.onnx_data",
    size_threshold=0,
)
onnx.checker.check_model(f"{DST}/onnx/model.onnx", full_check=True)
print({n: os.path.getsize(f"{DST}/onnx/{n}") for n in os.listdir(f"{DST}/onnx")})
