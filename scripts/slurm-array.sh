#!/usr/bin/env bash
# rstscope as a Slurm job array: 8 shards, then a dependent merge job.
#
#   jobid=$(sbatch --parsable scripts/slurm-array.sh /archive/2026-11-24 /scratch/rst/2026-11-24)
#   sbatch --dependency=afterok:$jobid --wrap \
#       "rstscope merge -o /scratch/rst/2026-11-24/merged /scratch/rst/2026-11-24/shard-*"
#
#SBATCH --job-name=rstscope
#SBATCH --array=0-7
#SBATCH --cpus-per-task=2
#SBATCH --mem=4G
#SBATCH --time=02:00:00
set -euo pipefail
ARCHIVE=${1:?usage: slurm-array.sh ARCHIVE_DIR OUT_DIR}
OUT=${2:?usage: slurm-array.sh ARCHIVE_DIR OUT_DIR}
# --shard auto/N reads SLURM_ARRAY_TASK_ID; N must match --array's size.
exec rstscope --quiet --shard "auto/${SLURM_ARRAY_TASK_COUNT:-8}" -j "${SLURM_CPUS_PER_TASK:-2}" \
    --gzip -o "$OUT/shard-${SLURM_ARRAY_TASK_ID}" "$ARCHIVE"
