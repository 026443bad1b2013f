#!/usr/bin/env bash
# One-shot GPU check: the CUDA tests and the MAML benchmark on CUDA and on CPU.
# Needs: a machine with a CUDA device and a CUDA build of torch, run from the root of
# a checkout (the script installs the project there with `pip install -e ".[dev]"`).
#   run: bash bench/gpu_check.sh
# Writes under $OUT (default ./gpu-out): install.log, nvidia-smi.txt, pytest-gpu.txt
# (output and exit status of `pytest -m gpu`), bench_maml_cpu.txt and
# bench_maml_cuda.txt; prints the last lines of each .txt file.
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
