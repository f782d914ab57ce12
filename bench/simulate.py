"""Throughput of the light-curve simulator: ``alertformer bench-simulate``.

Prints one JSON report: light curves and points per second (wall clock, and light curves
per CPU second, steadier on a shared machine) for each survey, balanced over all classes.
The first, small call builds the cosmology tables and is not timed.
"""
import json
import platform
import time

import numpy as np

from training.simulate import simulate


def bench(n: int, survey: str, seed: int) -> dict:
    """Time one `simulate` call of `n` objects; rates in light curves/s and points/s."""
    start_s, start_cpu_s = time.perf_counter(), time.process_time()
    sims = simulate(n, np.random.default_rng(seed), survey)
    elapsed_s, cpu_s = time.perf_counter() - start_s, time.process_time() - start_cpu_s
    return {
        "survey": survey,
        "n_light_curves": len(sims),
        "n_points": sims.n_points,
        "points_per_light_curve": round(sims.n_points / max(len(sims), 1), 1),
        "elapsed_s": round(elapsed_s, 3),
        "cpu_s": round(cpu_s, 3),
        "light_curves_per_s": round(len(sims) / elapsed_s, 1),
        "light_curves_per_cpu_s": round(len(sims) / cpu_s, 1),
        "points_per_s": round(sims.n_points / elapsed_s, 1),
    }


def cmd_bench_simulate(args) -> int:
    """Print the report of the module docstring for ``alertformer bench-simulate``'s `args` as JSON."""
    simulate(11, np.random.default_rng(args.seed))  # warm-up: cosmology tables, imports
    report = {
        "benchmark": "training.simulate",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "results": [bench(args.n, s, args.seed) for s in args.surveys],
    }
    print(json.dumps(report, indent=2))
    return 0
