"""`RunSummary`: what ``alertformer run`` prints on stopping (and the demo's closing line)."""
import json

import numpy as np

from models.taxonomy import CLASS_NAMES, N_CLASSES
from stream.service import RunSummary


def test_committed_batches_add_up_by_top_class():
    summary = RunSummary()
    probs = np.eye(N_CLASSES, dtype=np.float32)[[0, 0, 4, 2]]  # Ia, Ia, M-dwarf Flare, II
    summary.add(probs, n_dead=1, n_requests=2)
    summary.add(None, n_dead=3, n_requests=0)  # a batch of dead letters only
    summary.add(np.eye(N_CLASSES, dtype=np.float32)[[4]], n_dead=0, n_requests=1)
    assert json.loads(json.dumps(summary.as_dict())) == {
        "alerts_scored": 5, "dead_letters": 4, "followup_requests": 3,
        "top_classes": {CLASS_NAMES[0]: 2, CLASS_NAMES[4]: 2, CLASS_NAMES[2]: 1},
    }
    assert list(summary.as_dict()["top_classes"])[-1] == "II"  # the most frequent first
