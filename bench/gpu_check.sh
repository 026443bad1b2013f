#!/usr/bin/env bash
# One-shot GPU check: the CUDA tests, the MAML benchmark on CUDA and on CPU, and the
# meta-batch x width sweep with the kernel-launch share (bench_gpu_sweep.py), and the
# physics-informed meta-gradient against the data-only one on CUDA (bench_physics.py).
# Needs: a machine with a CUDA device and a CUDA build of torch, run from the root of
# a checkout (the script installs the project there with `pip install -e ".[dev]"`).
#   run: bash bench/gpu_check.sh
# Writes under $OUT (default ./gpu-out): install.log, nvidia-smi.txt, pytest-gpu.txt
# (output and exit status of `pytest -m gpu`), bench_maml_cpu.txt,
# bench_maml_cuda.txt, gpu_sweep.txt and bench_physics_cuda.txt; prints the last
# lines of each .txt file.
# About 10 minutes on one H100-class GPU.
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
python -m pip install -q -e ".[dev]" > "$OUT/install.log" 2>&1
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python -m pytest -m gpu -q > "$OUT/pytest-gpu.txt" 2>&1
echo "pytest -m gpu exit $?" >> "$OUT/pytest-gpu.txt"
python bench/bench_maml.py --threads 8 > "$OUT/bench_maml_cpu.txt" 2>&1
python bench/bench_maml.py --device cuda > "$OUT/bench_maml_cuda.txt" 2>&1
python bench/bench_gpu_sweep.py --device cuda --profile --cpu-threads 2 \
    > "$OUT/gpu_sweep.txt" 2>&1
python bench/bench_physics.py --device cuda --repeats 5 > "$OUT/bench_physics_cuda.txt" 2>&1

tail -n 3 "$OUT"/*.txt
