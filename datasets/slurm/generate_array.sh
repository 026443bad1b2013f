#!/bin/bash
# Generate one store as a SLURM job array: each array task solves one shard, then the
# last step merges them. Submit (8 shards, then the merge once all have finished):
#
#   jid=$(sbatch --parsable --array=0-7 datasets/slurm/generate_array.sh)
#   sbatch --dependency=afterok:$jid --wrap \
#       "scimeta merge --out data/oscillator-train.h5"
#
# A requeued or re-submitted array task skips a finished shard and continues an
# interrupted one (--resume). Every task writes data/oscillator-train.shard-I-of-N.h5.
#SBATCH --job-name=scimeta-generate
#SBATCH --cpus-per-task=4
#SBATCH --time=01:00:00
#SBATCH --requeue
#SBATCH --output=logs/%x-%A_%a.out

set -euo pipefail
FAMILY=${FAMILY:-oscillator}
REGIME=${REGIME:-unforced-train}
TASKS=${TASKS:-10000}
SEED=${SEED:-0}
OUT=${OUT:-data/${FAMILY}-${REGIME}.h5}

# HDF5 file locking fails on many shared (NFS/Lustre) file systems
export HDF5_USE_FILE_LOCKING=FALSE
mkdir -p "$(dirname "$OUT")"

# --shard auto = SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT
scimeta generate "$FAMILY" --regime "$REGIME" --tasks "$TASKS" --seed "$SEED" \
    --out "$OUT" --workers "${SLURM_CPUS_PER_TASK:-1}" --shard auto --resume
