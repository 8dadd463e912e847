#!/usr/bin/env bash
# The GPU benchmarks of one lease on a CUDA machine, sized to end within DEADLINE_S + 60 s:
#
#   bench/gpu_run.sh OUT DATA_DIR [DEADLINE_S] [WORK]
#
# OUT receives eight files at most (what a lease gives back); the sweeps' run folders are
# written under WORK (default /tmp/gpu_run) and packed into OUT at the end.
#
# 1. bench/train_speed.py on CUDA: training and evaluation samples/s per preset and batch
#    size, eager and as a replayed CUDA graph, and whether the graph's weights equal the
#    eager ones bit for bit (OUT/train_speed_cuda.json), with the GPU otherwise idle;
# 2. two sweeps (bench/sweep.py) launched by torchrun, side by side until DEADLINE_S:
#    bench/sweeps/batch1_cpu.json on the CPU cores (exact online training, batch 1) and
#    bench/sweeps/gpu.json on the GPU (the batching rule and longer candidate runs);
#    runs cut by the deadline keep their completed epochs;
# 3. their summaries (OUT/sweep_*.json) and the run folders, logs and best checkpoints
#    (OUT/runs_*.tar.gz), since a lease gives back only a few files.
set -u
out=$1 data=$2 deadline=${3:-420} work=${4:-/tmp/gpu_run}
cpu_ranks=${CPU_RANKS:-11} gpu_ranks=${GPU_RANKS:-4}
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
mkdir -p "$out" "$work"
start=$(date +%s)
nvidia-smi -L || true
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
timeout -s INT "$deadline" torchrun --standalone --nproc-per-node "$cpu_ranks" \
    bench/sweep.py run bench/sweeps/batch1_cpu.json --out "$work/sweep_cpu" \
    --data-dir "$data" --threads 1 >"$out/sweep_cpu.log" 2>&1 &
cpu_pid=$!
python3 bench/train_speed.py --devices cuda --presets default fmnist-1000 mnist-1600 \
    --batch-sizes 1 8 32 128 512 2048 --budget-s 1 --max-batches 200 --threads 1 \
    --out "$out/train_speed_cuda.json" >"$out/train_speed.log" 2>&1
echo "speed benchmark done after $(($(date +%s) - start)) s"
left=$((deadline - ($(date +%s) - start)))
timeout -s INT "$left" torchrun --standalone --nproc-per-node "$gpu_ranks" \
    bench/sweep.py run bench/sweeps/gpu.json --out "$work/sweep_gpu" \
    --data-dir "$data" --threads 1 >"$out/sweep_gpu.log" 2>&1
wait "$cpu_pid"
echo "sweeps stopped after $(($(date +%s) - start)) s"
for kind in cpu gpu; do
    python3 bench/sweep.py summary "$work/sweep_$kind" --out "$out/sweep_$kind.json" >/dev/null
    tar -czf "$out/runs_$kind.tar.gz" -C "$work" --exclude=last.pt --exclude='rule-*/best.pt' \
        "sweep_$kind"
done
ls -la "$out"
