#!/usr/bin/env bash
# One-shot GPU check for a session lent a GPU machine (see the device tool's README):
#   run: bash bench/gpu_check.sh        (writes results under $OUT, default ./gpu-out)
# Installs the project, runs the GPU tests, the MAML benchmark on CUDA and CPU.
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
python -m pip install -q -e ".[dev]" > "$OUT/install.log" 2>&1
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python -m pytest -m gpu -q > "$OUT/pytest-gpu.txt" 2>&1
echo "pytest -m gpu exit $?" >> "$OUT/pytest-gpu.txt"
python bench/bench_maml.py --threads 8 > "$OUT/bench_maml_cpu.txt" 2>&1
python bench/bench_maml.py --device cuda > "$OUT/bench_maml_cuda.txt" 2>&1

tail -n 3 "$OUT"/*.txt
