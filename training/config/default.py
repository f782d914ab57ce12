# The shipped recipe (models/shipped/alertformer.pt): the defaults of training/train.py, restated
# so the numbers sit in one readable place; tests check the two agree.
# Budget: <= ~25 min wall on the shared 2-core CPU machine (measured: see models/shipped/RECIPE.md).
out_path = "models/shipped/alertformer.pt"
work_dir = "out/train"
seed = 0
device = "auto"
init_from = ""  # a fresh model
num_threads = 1  # see training/train.py: a 2nd thread stalls when another process holds a core
progress = True
log_interval = 50
n_chunks = 4

# data: 20,000 simulated curves per survey (LSST with forced photometry, ZTF with upper limits),
# 11 balanced classes -> 1,818 per class per survey; val 2,200 per survey (200 per class).
# ZTF BTS: 806 train / 270 val objects (60/20/20 split; the 270 test objects are never read).
n_sim_train = 20000
n_sim_val = 2200
sim_mix = "balanced"
use_bts = True
use_real_packets = True
bts_both_forms = False  # True also shows BTS train curves in the published form (measured: worse on val)
bts_val_draws = 4
data_dir = ""

# model: ~0.2 M parameters (AlertTransformer, ModelConfig)
d_model = 64
n_heads = 4
n_layers = 4
dropout = 0.1
max_visits = 64
n_time_freqs = 16

prefix_scheme = "log"
drop_nondetections_prob = 0.3
drop_context_prob = 0.3
scale_jitter_dex = 0.4
weight_decay = 0.1
grad_clip = 1.0

# stage 1, pretraining: 800 x 128 = 102k prefixes, ~2.6 passes over the 40k simulated curves
pretrain_iters = 800
pretrain_batch_size = 128
pretrain_lr = 1e-3
pretrain_min_lr = 1e-4
pretrain_warmup_iters = 50
mask_fraction = 0.15
pretrain_eval_interval = 200
pretrain_eval_curves = 1000

# stage 2, fine-tuning on simulations: 6,000 x 128 = 768k prefixes, ~19 passes
finetune_iters = 6000
finetune_batch_size = 128
finetune_lr = 1e-3
finetune_min_lr = 5e-5
finetune_warmup_iters = 100
finetune_eval_interval = 500

# stage 3, ZTF BTS + simulated replay: 64 BTS + 64 simulated curves per step;
# 2,000 steps = 128k BTS prefixes, ~160 passes over 806 objects, so early stopping (every 100 steps,
# patience 5) matters
bts_iters = 2000
bts_batch_size = 128
bts_lr = 5e-4
bts_min_lr = 3e-5
bts_warmup_iters = 50
bts_replay_fraction = 0.5
bts_eval_interval = 100
bts_patience = 5
class_weight_max_ratio = 20.0
calibrate = True
