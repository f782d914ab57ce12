# Smoke recipe: every stage of training/train.py in ~5 s on one CPU thread, for tests.
# Overrides of training/recipe.py's defaults (TrainConfig).
# Data: 11 classes x 60 = 660 simulated train curves per survey (lsst, ztf), 20 x 11 val;
# with 64 curves per step, 120 fine-tuning steps are ~6 passes over the 1,320 curves.
# The BTS stage is off (it needs the BTS file); test it separately.
out_path = "out/smoke/alertformer.pt"
work_dir = "out/smoke"
seed = 0
progress = False
log_interval = 10

n_sim_train = 660
n_sim_val = 220
use_bts = False

d_model = 32
n_heads = 2
n_layers = 2
dropout = 0.0

pretrain_iters = 20
pretrain_batch_size = 64
pretrain_warmup_iters = 5
pretrain_eval_interval = 10
pretrain_eval_curves = 128

finetune_iters = 120
finetune_batch_size = 64
finetune_lr = 3e-3
finetune_warmup_iters = 10
finetune_eval_interval = 40

bts_iters = 0
