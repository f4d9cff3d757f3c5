# Call 3 (nvidia-h200-x2): scaling of the base sigmoid model at 8K tokens; loss match, 2<->1 restore.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
date -u; nvidia-smi topo -m | head -4
K="--config=configs/base.py --config.data.max_len=8192 --config.data.synthetic.min_genes=7000 --config.data.synthetic.max_genes=8191 --config.data.synthetic.n_genes=12000 --config.data.synthetic.n_cells=1200 --config.train.log_every=1 --config.train.progress_bar=False --config.train.checkpoint_every=60"
R=/tmp/runs; mkdir -p $R
t() { local name=$1; shift; echo "== $name $(date -u +%T)"; timeout 200 python3 -m train $K --workdir=$R/$name "$@" > $R/$name.log 2>&1; echo "rc=$? $(date -u +%T)"; grep -v -i warn $R/$name.log | tail -3; }
CUDA_VISIBLE_DEVICES=0 t g1 --config.data.batch_size=8 --config.train.num_steps=60
t g2_data --config.data.batch_size=8 --config.train.num_steps=60 --config.mesh.data=2
t g2_fsdp --config.data.batch_size=8 --config.train.num_steps=60 --config.mesh.data=1 --config.mesh.fsdp=2
t g2_data_b16 --config.data.batch_size=16 --config.train.num_steps=40 --config.mesh.data=2
CUDA_VISIBLE_DEVICES=0 t g1_b16 --config.data.batch_size=16 --config.train.num_steps=40
cp -r $R/g1 $R/g1_to_2; cp -r $R/g2_fsdp $R/g2_fsdp_to_1
CUDA_VISIBLE_DEVICES=0 t g1 --config.data.batch_size=8 --config.train.num_steps=90
t g1_to_2 --config.data.batch_size=8 --config.train.num_steps=90 --config.mesh.data=2
CUDA_VISIBLE_DEVICES=0 t g2_fsdp_to_1 --config.data.batch_size=8 --config.train.num_steps=90
timeout 60 python3 docs/probes/shardcheck.py > $R/shardcheck.log 2>&1; tail -12 $R/shardcheck.log
for n in g1 g2_data g2_fsdp g2_data_b16 g1_b16 g1_to_2 g2_fsdp_to_1; do sed "s/^{/{\"run\": \"$n\", /" $R/$n/metrics.jsonl; done > $OUT/scaling_metrics.jsonl
for n in g1 g2_data g2_fsdp g2_data_b16 g1_b16 g1_to_2 g2_fsdp_to_1; do echo "== $n"; grep -v -i warn $R/$n.log | tail -6; done > $OUT/scaling_logs.txt
cp $R/shardcheck.log $OUT/
