"""Photometric bands: names, integer codes and effective wavelengths.

Band names are the contract between decoders, the simulator and the model
(DESIGN.md, Photometry). The integer code is what light-curve arrays carry
(`int8`); the effective wavelength lets one model serve LSST ugrizy and ZTF gri.
"""
import re

import numpy as np

BAND_NAMES: tuple[str, ...] = (
    "lsst-u", "lsst-g", "lsst-r", "lsst-i", "lsst-z", "lsst-y",
    "ztf-g", "ztf-r", "ztf-i",
)
BAND_CODE: dict[str, int] = {name: code for code, name in enumerate(BAND_NAMES)}
AB_ZERO_POINT_NJY_MAG = 31.4  # m_AB = 31.4 - 2.5 log10(flux / nJy): the AB magnitude of 1 nJy

# Effective (pivot) wavelengths in nm: LSST from the LSST filter throughputs
# (SMTN-002), ZTF from the SVO filter service.
BAND_WAVELENGTH_NM = np.array(
    [367.1, 482.7, 622.3, 754.6, 869.1, 971.2, 472.3, 633.9, 788.6], dtype=np.float32
)

# Single-visit 5-sigma depths (AB mag) for 30 s at zenith (SCIENCE.md section 4).
BAND_DEPTH_5SIGMA_MAG = np.array(
    [23.8, 24.8, 24.4, 23.9, 23.3, 22.5, 20.8, 20.6, 19.9], dtype=np.float32
)


def band_codes(names) -> np.ndarray:
    """Map band names (e.g. ``"lsst-r"``) to int8 codes.

    >>> band_codes(["lsst-g", "ztf-r"]).tolist()
    [1, 7]
    """
    try:
        return np.fromiter((BAND_CODE[n] for n in names), dtype=np.int8)
    except KeyError as err:
        raise ValueError(f"unknown band name {err.args[0]!r}; known: {', '.join(BAND_NAMES)}") from None


# Survey names a bare band letter may be qualified with (``survey=`` of `parse_band_names`).
SURVEY_PREFIX: dict[str, str] = {"lsst": "lsst", "rubin": "lsst", "lsstcam": "lsst", "ztf": "ztf"}


def parse_band_names(names, survey: str | None = None) -> np.ndarray:
    """Map band names in the usual spellings to int8 codes.

    Accepted: the canonical names (``lsst-r``, ``ztf-g``), the survey and letter with any
    separator or none (``ztfg``, ``ZTF_g``, ``lsst r``, ``rubin-i``), and a bare letter
    (``g``) when `survey` says which survey's filter it is.

    Parameters
    ----------
    names : (N,) sequence of str
    survey : {"lsst", "rubin", "ztf"}, optional
        The survey of bare letters.

    Raises
    ------
    ValueError
        Naming the first band that is unknown, or a bare letter without `survey`.

    >>> parse_band_names(["ztfg", "ZTF-r", "g"], survey="ztf").tolist()
    [6, 7, 6]
    >>> parse_band_names(["lsst-u", "rubin_y"]).tolist()
    [0, 5]
    """
    if survey is not None and survey.lower() not in SURVEY_PREFIX:
        raise ValueError(f"survey {survey!r}: expected one of {', '.join(SURVEY_PREFIX)}")
    prefix = None if survey is None else SURVEY_PREFIX[survey.lower()]
    codes = {}
    for name in dict.fromkeys(str(n) for n in names):  # each distinct name once
        match = re.fullmatch(r"\s*([a-z]*?)[\s_-]*([ugrizy])\s*", name, flags=re.IGNORECASE)
        survey_word = match.group(1).lower() if match else ""
        if match and not survey_word and prefix is None:
            raise ValueError(f"band {name!r}: a bare letter needs survey= "
                             f"({', '.join(sorted(set(SURVEY_PREFIX.values())))}), or write e.g. ztf-{name.strip()}")
        survey_prefix = SURVEY_PREFIX.get(survey_word or prefix)
        canonical = f"{survey_prefix}-{match.group(2).lower()}" if match and survey_prefix else None
        if canonical not in BAND_CODE:
            raise ValueError(f"band {name!r} is not a band alertformer knows ({', '.join(BAND_NAMES)})")
        codes[name] = BAND_CODE[canonical]
    return np.fromiter((codes[str(n)] for n in names), dtype=np.int8, count=len(names))
