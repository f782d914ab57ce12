"""The training recipe: pretrain -> fine-tune (sim) -> calibrate -> fine-tune (ZTF BTS) -> calibrate -> save.

`TrainConfig`'s defaults ARE the shipped recipe (models/shipped/alertformer.pt),
each explained where it is set (its checkpoint predates ``rubin_context_fields`` and
carries no table, which reads as the default); they are stated nowhere else
(``training/config/default.py`` overrides nothing). `load_recipe` resolves a
run's config: the defaults, then a ``--config FILE`` of plain assignments
(``training/config/smoke.py``), then ``--key=value`` overrides. An unknown key,
a value of another type than the default's (an int is accepted for a float), or
an unknown context field name is an error. `training.train.run` runs it.
"""
from dataclasses import asdict, dataclass
from pathlib import Path

from models.context import context_fields
from models.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent / "config"


@dataclass(frozen=True)
class TrainConfig:
    """The recipe's settings; the defaults are the shipped recipe.

    Budget: <= ~25 min wall on the shared 2-core CPU machine (measured: see models/shipped/RECIPE.md).
    """

    # --- I/O and system
    out_path: str = "models/shipped/alertformer.pt"  # the final checkpoint
    work_dir: str = "out/train"  # config.json, metrics.json, stage checkpoints
    seed: int = 0
    device: str = "auto"  # "auto": cuda if available, else cpu
    # a checkpoint whose weights start the run ("" = a fresh model); with pretrain_iters = finetune_iters = 0
    # it reruns stage 3 alone from a saved stage-2 checkpoint (e.g. out/train/finetune_sim.pt)
    init_from: str = ""
    # torch CPU threads; 0 keeps torch's default. 1 on the shared 2-core machine: when another process
    # holds a core, a second torch thread waits at every barrier (steps of 0.1 s took up to 5 s).
    num_threads: int = 1
    progress: bool = True  # tqdm progress bars
    log_interval: int = 50  # steps between training-loss readings (each is a device sync)
    n_chunks: int = 4  # forward each step in 4 length-sorted chunks: ~half the padded tokens, same loss

    # --- data: 20,000 simulated curves per survey (LSST with forced photometry, ZTF with upper limits),
    # 11 balanced classes -> 1,818 per class per survey; val 2,200 per survey (200 per class).
    # ZTF BTS: 806 train / 270 val objects (60/20/20 split; the 270 test objects are never read).
    n_sim_train: int = 20000  # simulated train curves per survey (lsst and ztf), balanced classes
    n_sim_val: int = 2200  # simulated val curves per survey (200 per class)
    sim_mix: str = "balanced"  # or "realistic"
    use_bts: bool = True  # stage 3 on the real ZTF BTS train split
    # stage 3 (with use_bts) also on the real ZTF packets' train part, as the service windows them
    # (training.real_packets)
    use_real_packets: bool = True
    # stage 3 also shows each BTS train curve in its published form (the file's detections alone, no
    # context), beside the service form (simulated ZTF limits, a drawn SN context); measured: worse on val
    bts_both_forms: bool = False
    bts_val_draws: int = 4  # random prefixes per BTS val object (270 objects: more draws, less noise)
    data_dir: str = ""  # data directory holding labeled/; "" = $ALERTFORMER_DATA or the repository's data/

    # --- model (models.model.ModelConfig): ~0.2 M parameters
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 4
    dropout: float = 0.1
    max_visits: int = 64
    n_time_freqs: int = 16

    # Which alert-context fields the model is shown of a Rubin alert (models.context), written into the
    # checkpoint's table (ModelConfig.context_fields_by_survey) and drawn for the simulated LSST curves
    # (training.sim_context). Comma-separated names ("" = none); n_detections_history is no model input
    # (models.encode). The shipped model is shown the solar-system association alone. Measured, not
    # shipped: "real_bogus,first_detection_mjd_tai,ss_distance_arcsec" (ZTF's drb standing in for the
    # reliability) gained 7-8 points of macro-F1 at 1-3 detections on simulated LSST, but real LSSTCam
    # alerts (data/rubin, schema 10) leave diaObject.firstDiaSourceMjdTai null, which that training
    # showed only for asteroids (README, Alert context).
    rubin_context_fields: str = "ss_distance_arcsec"

    # --- augmentation (training.prefixes.prefix_batch)
    # cut at k detections with P(k) ~ 1/k; "uniform" for uniform among detections; "mixed" for either per curve
    prefix_scheme: str = "log"
    drop_nondetections_prob: float = 0.3  # share of curves shown with detections only
    # share of curves shown without their alert context: without it, a model trained with contexts
    # everywhere scored real BTS curves passed without one (the Python API's case) all as one class
    drop_context_prob: float = 0.3
    # flux and error x 10**U(-0.4, 0.4) per training curve: the simulated ZTF errors are ~2.5x smaller than
    # real ones, and the error scale alone sent real BTS supernovae to the EB class (training.prefixes.prefix_batch)
    scale_jitter_dex: float = 0.4

    # --- optimizer, every stage
    weight_decay: float = 0.1
    grad_clip: float = 1.0

    # --- stage 1, pretraining: 800 x 128 = 102k prefixes, ~2.6 passes over the 40k simulated curves
    pretrain_iters: int = 800
    pretrain_batch_size: int = 128
    pretrain_lr: float = 1e-3
    pretrain_min_lr: float = 1e-4
    pretrain_warmup_iters: int = 50
    mask_fraction: float = 0.15
    pretrain_eval_interval: int = 200
    pretrain_eval_curves: int = 1000

    # --- stage 2, fine-tuning on simulations: 6,000 x 128 = 768k prefixes, ~19 passes
    finetune_iters: int = 6000
    finetune_batch_size: int = 128
    finetune_lr: float = 1e-3
    finetune_min_lr: float = 5e-5
    finetune_warmup_iters: int = 100
    finetune_eval_interval: int = 500

    # --- stage 3, ZTF BTS + simulated replay: 64 BTS + 64 simulated curves per step;
    # 2,000 steps = 128k BTS prefixes, ~160 passes over 806 objects, so early stopping (every 100 steps,
    # patience 5) matters
    bts_iters: int = 2000
    bts_batch_size: int = 128
    bts_lr: float = 5e-4
    bts_min_lr: float = 3e-5
    bts_warmup_iters: int = 50
    bts_replay_fraction: float = 0.5  # share of each batch drawn from the simulated train set
    bts_eval_interval: int = 100
    bts_patience: int = 5  # evaluations without improvement before stopping
    class_weight_max_ratio: float = 20.0  # class-balanced loss: largest weight at most this x the smallest
    calibrate: bool = True  # fit the temperature after stages 2 and 3

    # --- knowledge distillation (training.finetune.distillation_loss): with a teacher checkpoint, stages 2
    # and 3 also fit its softened class distribution on every prefix, so a smaller model (d_model,
    # n_layers) learns the larger one's scores; "" = no teacher (the shipped recipe)
    teacher: str = ""
    distill_weight: float = 0.5  # loss = (1 - w) * cross-entropy + w * distillation
    distill_temperature: float = 2.0

    def __post_init__(self):
        try:
            self.context_fields_by_survey()
        except ValueError as err:
            raise ConfigError(str(err)) from None

    def context_fields_by_survey(self) -> dict[str, tuple[str, ...]]:
        """The trained model's table (`models.model.ModelConfig.context_fields_by_survey`); ValueError naming an
        unknown field."""
        names = [name.strip() for name in self.rubin_context_fields.split(",") if name.strip()]
        return {"rubin": context_fields(names, "rubin_context_fields")}


DEFAULTS: dict = asdict(TrainConfig())


def _coerce(key: str, value, where: str):
    """``value`` checked against the default's type (int accepted for float); ConfigError otherwise."""
    if key not in DEFAULTS:
        raise ConfigError(f"{where}: unknown config key {key!r}; known keys: {', '.join(sorted(DEFAULTS))}")
    kind = type(DEFAULTS[key])
    if kind is float and type(value) is int:
        return float(value)
    if type(value) is not kind:
        raise ConfigError(f"{where}: {key}={value!r} is {type(value).__name__}, the default "
                          f"{DEFAULTS[key]!r} is {kind.__name__}")
    return value


def parse_value(key: str, text: str):
    """A command-line string as the type of ``key``'s default (``"True"``/``"false"``/``"1"`` for bools)."""
    if key not in DEFAULTS:
        raise ConfigError(f"command line: unknown config key {key!r}; known keys: {', '.join(sorted(DEFAULTS))}")
    kind = type(DEFAULTS[key])
    try:
        if kind is bool:
            lowered = text.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return lowered in ("true", "1", "yes")
        return kind(text)
    except ValueError:
        raise ConfigError(f"command line: {key}={text!r} is not a {kind.__name__}") from None


def load_recipe(config_file=None, overrides: dict | None = None, argv_overrides=()) -> dict:
    """The resolved config: defaults, then ``config_file``, then overrides.

    Parameters
    ----------
    config_file : str or Path, optional
        A Python file of plain assignments (names starting with ``_`` and
        imported modules are ignored). A bare name like ``smoke`` means
        ``training/config/smoke.py``.
    overrides : dict, optional
        ``{key: value}`` with Python values, applied after the file.
    argv_overrides : sequence of str
        ``"--key=value"`` strings, applied last.

    Raises
    ------
    ConfigError
        For an unknown key, a value of the wrong type, or an invalid value (an unknown context field).

    >>> load_recipe(overrides={"seed": 3})["seed"]
    3
    >>> load_recipe(argv_overrides=["--progress=false", "--pretrain_lr=2e-3"])["pretrain_lr"]
    0.002
    """
    config = dict(DEFAULTS)
    if config_file:
        path = Path(config_file)
        if not path.suffix and not path.exists():
            path = CONFIG_DIR / f"{config_file}.py"
        namespace: dict = {}
        exec(compile(path.read_text(), str(path), "exec"), namespace)  # noqa: S102 (trusted config files)
        for key, value in namespace.items():
            if key.startswith("_") or type(value).__name__ == "module":
                continue
            config[key] = _coerce(key, value, str(path))
    for key, value in (overrides or {}).items():
        config[key] = _coerce(key, value, "overrides")
    for arg in argv_overrides:
        if not arg.startswith("--") or "=" not in arg:
            raise ConfigError(f"command line: {arg!r} is not --key=value")
        key, text = arg[2:].split("=", 1)
        config[key] = parse_value(key, text)
    TrainConfig(**config)  # checks the values (`TrainConfig.__post_init__`)
    return config
