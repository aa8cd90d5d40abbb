#!/usr/bin/env bash
# Builds .gpu/ for benchmarks/speed/gpu_check.py on a lent GPU machine (the `device` tool).
#
# The lent machine reaches no network, has python 3.12 with its own torch (2.11 when last
# read), transformers 6.x and no open_clip, duckdb or pydantic (/work/.library/device/KINDS.md),
# and only the repository travels, 64 MiB in all with what `carry` names. So .gpu/ (ignored by
# git) holds the cp312 wheels of what is missing, at the versions constraints.txt pins, and a
# footwear subset of the real Kaggle catalogue: ROWS footwear rows of styles.csv and their
# images, about 16 KB each. Run here, then on the device (carry: [".gpu"]):
#
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
#     --target /tmp/site .gpu/whl/*.whl && export PYTHONPATH=/tmp/site:$PWD || exit; \
#   export FASHION_SHARED_DATA=$PWD/.gpu/data PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1; \
#   python3 benchmarks/speed/gpu_check.py --device cuda --size footwear_rows=null \
#     --size images=100000 --out $OUT/gpu_check.json 2>&1 | tee $OUT/gpu_check.log
#
# and rehearse that data on the CPU first:
#   FASHION_SHARED_DATA=.gpu/data .venv/bin/python benchmarks/speed/gpu_check.py --device cpu \
#     --quick --size footwear_rows=null
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
ROWS=${ROWS:-1200}
DATA=${FASHION_SHARED_DATA:-$ROOT/../shared/data}
PY=${PY:-.venv/bin/python}
CATALOGUE="$DATA/fashion-product-images-small"
[ -f "$CATALOGUE/styles.csv" ] || { echo "no catalogue at $CATALOGUE" >&2; exit 2; }

grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
rm -rf .gpu
mkdir -p .gpu/whl .gpu/data/fashion-product-images-small/images

# Missing on the device image, or another version there (transformers 6, tokenizers); the
# device's huggingface_hub (1.33) satisfies transformers 5.23, so it is not carried.
pin() { grep -i "^$1==" constraints.txt; }
WHEELS=(open_clip_torch ftfy wcwidth duckdb pydantic pydantic_core annotated-types
        typing-inspection braceexpand webdataset wids transformers tokenizers regex)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 -d .gpu/whl $(for w in "${WHEELS[@]}"; do pin "$w"; done)

"$PY" - "$CATALOGUE" "$ROWS" <<'EOF'
import shutil, sys
from pathlib import Path
catalogue, rows = Path(sys.argv[1]), int(sys.argv[2])
lines = (catalogue / "styles.csv").read_text(encoding="utf-8").splitlines()
footwear = [line for line in lines[1:] if ",Footwear," in line]
kept = [line for line in footwear if (catalogue / "images" / f"{line.split(',')[0]}.jpg").is_file()]
kept = kept[:rows]
out = Path(".gpu/data/fashion-product-images-small")
(out / "styles.csv").write_text("\n".join([lines[0], *kept]) + "\n", encoding="utf-8")
for line in kept:
    name = f"{line.split(',')[0]}.jpg"
    shutil.copy2(catalogue / "images" / name, out / "images" / name)
print(f"{len(kept)} footwear rows and images")
EOF
TREE=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
GPU=$(du -sb .gpu | cut -f1)
echo ".gpu: $((GPU / 1048576)) MiB; with the tracked tree $(((GPU + TREE) / 1048576)) MiB (limit 64)"
[ $((GPU + TREE)) -lt $((64 * 1048576)) ] || { echo "over 64 MiB: lower ROWS" >&2; exit 2; }
