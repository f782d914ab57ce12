"""Peer classifiers that the evaluation runs beside the transformer, on the same data.

Two published approaches that install from PyPI (SCIENCE.md section 5, "Peers"):

- `features.FeatureBaseline`: hand-made light-curve features from the
  ``light-curve`` package (Bazin and Villar fits plus standard statistics, per
  band, on flux) and a few global ones, into a gradient-boosted tree classifier
  (scikit-learn's `HistGradientBoostingClassifier`), the recipe of ALeRCE's
  light-curve classifier (Sánchez-Sáez et al. 2021). Extraction runs in Rust
  over many curves at once (`light_curve.Extractor.many`).
- `supernnova.SuperNNovaPeer`: SuperNNova (Möller & de Boissière 2020), a
  recurrent network on the photometry. It pins astropy<6, so it lives in its own
  virtual environment (`supernnova_env.ensure_supernnova_venv`) and runs through
  ``supernnova_runner.py`` in a subprocess; light curves cross as SNANA-style
  CSV files (`snana.write_snana_csv`).

Both expose ``fit(curves, class_ids)`` and ``predict_proba(curves) -> (N, C)``
over the columns of `models.taxonomy.CLASS_IDS` (a class absent from training
gets probability 0), and ``predict_sets({name: curves}) -> {name: (probs,
seconds)}`` for the evaluation, which times inference per set.

Both are trained on random prefixes as well as whole curves (SuperNNova by its
own ``random_length`` option, the feature baseline by
`features.augment_with_prefixes`), as the transformer is, so that their early
scores are not handicapped by never having seen a young light curve.
"""
