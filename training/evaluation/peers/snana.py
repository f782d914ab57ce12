"""SNANA-style CSV files of light curves, SuperNNova's input format."""
import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.bands import BAND_NAMES
from models.lightcurve import LightCurve

# SNANA's FLUXCAL has zero point 27.5 AB; nJy has 31.4: FLUXCAL = flux_nJy * 10**(-0.4 * (31.4 - 27.5)).
NJY_TO_FLUXCAL = 10.0 ** (-0.4 * (31.4 - 27.5))
# SuperNNova names columns FLUXCAL_<filter>: one character per band. ZTF and LSST g/r/i differ, but a
# model is trained on one survey's curves, so the letters never mix within one model.
FILTER_LETTER = {name: name.split("-")[1] for name in BAND_NAMES}


def write_csv(path: Path, header: Sequence[str], columns: Sequence[np.ndarray]) -> None:
    """A CSV file of equal-length `columns` under `header`."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(zip(*(c.tolist() for c in columns)))


def write_snana_csv(phot_path, curves: Sequence[LightCurve], snids: Sequence[str],
                    head_path=None, class_ids=None) -> None:
    """Write curves as SuperNNova's CSV input: a PHOT file and, with labels, a HEAD file.

    PHOT columns: SNID, MJD, FLUXCAL (zero point 27.5, from nJy), FLUXCALERR,
    FLT (one letter per band). HEAD columns: SNID, SNTYPE (the ELAsTiCC2 class
    id), PEAKMJD (here the first detection's MJD: SuperNNova only uses it for
    plots, and the true peak would leak the label's timing).

    Parameters
    ----------
    phot_path : str or Path
    curves : sequence of LightCurve, length N
    snids : sequence of str, length N
        Unique ids without commas.
    head_path : str or Path, optional
    class_ids : (N,) array-like of int, optional
        Needed with ``head_path``.
    """
    lengths = np.fromiter((len(c) for c in curves), dtype=np.int64, count=len(curves))
    snid_col = np.repeat(np.asarray(snids, dtype=object), lengths)
    mjd = np.concatenate([c.mjd_tai for c in curves])
    flux = np.concatenate([c.flux_njy for c in curves]).astype(np.float64) * NJY_TO_FLUXCAL
    err = np.concatenate([c.flux_err_njy for c in curves]).astype(np.float64) * NJY_TO_FLUXCAL
    letters = np.array([FILTER_LETTER[b] for b in BAND_NAMES], dtype=object)
    flt = letters[np.concatenate([c.band for c in curves]).astype(np.intp)]
    write_csv(Path(phot_path), ("SNID", "MJD", "FLUXCAL", "FLUXCALERR", "FLT"),
               (snid_col, np.round(mjd, 6), np.round(flux, 5), np.round(err, 5), flt))
    if head_path is not None:
        first_det = np.array([c.mjd_tai[c.is_detection][0] if c.is_detection.any() else c.mjd_tai[0]
                              for c in curves])
        write_csv(Path(head_path), ("SNID", "SNTYPE", "PEAKMJD"),
                   (np.asarray(snids, dtype=object), np.asarray(class_ids, dtype=np.int64), first_det))
