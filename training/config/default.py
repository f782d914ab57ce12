# The shipped recipe (models/shipped/alertformer.pt) is the defaults of `training.recipe.TrainConfig`,
# where each setting is explained; this file overrides none of them, so
# `alertformer train --config training/config/default.py` runs exactly `alertformer train`.
# Copy it to write a recipe of your own: plain assignments, e.g. `n_sim_train = 5000`.
