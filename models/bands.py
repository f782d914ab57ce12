"""Photometric bands: names, integer codes and effective wavelengths.

Band names are the contract between decoders, the simulator and the model
(DESIGN.md, Photometry). The integer code is what light-curve arrays carry
(`int8`); the effective wavelength lets one model serve LSST ugrizy and ZTF gri.
"""
import numpy as np

BAND_NAMES: tuple[str, ...] = (
    "lsst-u", "lsst-g", "lsst-r", "lsst-i", "lsst-z", "lsst-y",
    "ztf-g", "ztf-r", "ztf-i",
)
BAND_CODE: dict[str, int] = {name: code for code, name in enumerate(BAND_NAMES)}

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
