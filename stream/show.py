"""``alertformer show OBJECT_ID``: one object's light curve and latest scores from Redis, as a table and a PNG.

`read_object` does the Redis reads (one round trip: ``{p}:lc:{objectId}`` and
``{p}:obj:{objectId}``, `stream.keys`); `render` (the table) and `plot` (the figure)
are pure, so each can be tested alone. The figure needs matplotlib (the ``eval``
extra), imported only when asked for.
"""
from dataclasses import dataclass

import numpy as np
import redis

from models.bands import AB_ZERO_POINT_NJY_MAG, BAND_NAMES
from models.lightcurve import LightCurve
from models.taxonomy import ID_TO_NAME
from stream.config import load_config
from stream.errors import ConfigError
from stream.history import unpack
from stream.keys import Keys

REDIS_TIMEOUT_S = 5.0  # one Redis call
FIGURE_SIZE_IN = (8.0, 4.5)


class NoSuchObject(ConfigError):
    """Redis holds no light curve of the object: never scored under this prefix, or expired."""


@dataclass(frozen=True)
class ObjectView:
    """What Redis holds of one object: its stored light curve and its latest scores."""

    object_id: str
    curve: LightCurve
    scores: dict[str, str]  # the ``{p}:obj:{objectId}`` hash; empty once it expired


def read_object(client: redis.Redis, keys: Keys, object_id: str) -> ObjectView:
    """The object's stored curve and scores.

    Raises
    ------
    NoSuchObject
        If Redis holds no light curve of `object_id` (never scored, or expired).
    ConfigError
        If Redis cannot be reached.
    """
    try:
        blob, scores = (client.pipeline(transaction=False).get(keys.light_curve(object_id))
                        .hgetall(keys.object_scores(object_id)).execute())
    except redis.RedisError as err:
        raise ConfigError(f"redis.url: cannot read the state ({err})") from None
    if not blob:
        raise NoSuchObject(f"object {object_id!r}: no light curve under the prefix {keys.prefix!r} (not scored "
                          "yet, or expired after scoring.history_ttl_s)")
    text = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in scores.items()}
    return ObjectView(object_id, unpack(blob), text)


def _mag_ab(flux_njy: np.ndarray) -> np.ndarray:
    """AB magnitude of positive fluxes; NaN for the others."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = AB_ZERO_POINT_NJY_MAG - 2.5 * np.log10(flux_njy.astype(np.float64))
    return np.where(flux_njy > 0, mag, np.nan)


def summary_line(view: ObjectView) -> str:
    """The latest scores in one line (or a note that they expired)."""
    s = view.scores
    if not s:
        return f"{view.object_id}: no scores stored (expired)"
    top = ID_TO_NAME.get(int(s["topClassId"]), s["topClassId"])
    return (f"{view.object_id}  ra={float(s['raDeg']):.5f} dec={float(s['decDeg']):.5f} deg  top class: {top}  "
            f"sn_likelihood={float(s['snLikelihood']):.3f}  flare_likelihood={float(s['flareLikelihood']):.3f}  "
            f"n_visits={s['nVisits']}  model={s['modelVersion']}")


def render(view: ObjectView) -> str:
    """The summary line, then one row per stored point, oldest first.

    >>> curve = LightCurve.from_arrays([7], [60000.5], [7], [1000.0], [50.0], [True])
    >>> print(render(ObjectView("o", curve, {})))
    o: no scores stored (expired)
       mjd_tai  band        flux_njy  flux_err_njy  mag_ab  det
    60000.5000  ztf-r         1000.0          50.0  23.900  yes
    """
    c = view.curve
    lines = [summary_line(view), f"{'mjd_tai':>10}  {'band':<6}  {'flux_njy':>12}  {'flux_err_njy':>12}  "
                                 f"{'mag_ab':>6}  det"]
    for mjd, band, flux, err, mag, det in zip(c.mjd_tai, c.band, c.flux_njy, c.flux_err_njy, _mag_ab(c.flux_njy),
                                              c.is_detection):
        mag_text = f"{mag:6.3f}" if np.isfinite(mag) else f"{'-':>6}"
        lines.append(f"{mjd:10.4f}  {BAND_NAMES[band]:<6}  {flux:12.1f}  {err:12.1f}  {mag_text}  "
                     f"{'yes' if det else 'no'}")
    return "\n".join(lines)


def plot(view: ObjectView, path) -> None:
    """Flux (nJy) against time (MJD TAI) per band, detections filled, other points hollow; a PNG at `path`."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigError("--png needs matplotlib (pip install 'alertformer[eval]')") from None
    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot as plt

    c = view.curve
    fig, ax = plt.subplots(figsize=FIGURE_SIZE_IN)
    for code in np.unique(c.band):
        for detected in (True, False):
            keep = (c.band == code) & (c.is_detection == detected)
            if keep.any():
                ax.errorbar(c.mjd_tai[keep], c.flux_njy[keep], yerr=c.flux_err_njy[keep], fmt="o",
                            mfc=None if detected else "none", label=f"{BAND_NAMES[code]}{'' if detected else ' (forced)'}")
    ax.axhline(0.0, color="0.7", lw=0.8)
    ax.set_xlabel("MJD (TAI)")
    ax.set_ylabel("difference flux (nJy)")
    ax.set_title(summary_line(view), fontsize=7)
    ax.legend(fontsize=7)
    fig.tight_layout()
    try:
        fig.savefig(path, format="png", dpi=120)
    except OSError as err:
        raise ConfigError(f"--png {path}: {err.strerror}") from None
    finally:
        plt.close(fig)


def cmd_show(args) -> int:
    config = load_config(args.config)
    client = redis.Redis.from_url(config.redis.url, socket_timeout=REDIS_TIMEOUT_S,
                                  socket_connect_timeout=REDIS_TIMEOUT_S)
    view = read_object(client, Keys(config.redis.prefix), args.object_id)
    print(render(view))
    if args.png:
        plot(view, args.png)
        print(f"figure: {args.png}")
    return 0
