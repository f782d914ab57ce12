"""Output records of a scored batch: scored alerts, ELAsTiCC2 classifications, follow-up requests.

All outputs are keyed by object id, so an object's records stay in one partition, in order.
"""
import json
import time

import numpy as np

from alertformer import __version__
from models.bands import BAND_NAMES
from models.taxonomy import CLASS_IDS
from stream import avro_io
from stream.ingest import Ingested
from stream.loop import Output
from stream.scored import ScoredBatch
from stream.score import Scores
from stream.window import trigger_index

BROKER_NAME = "alertformer"
CLASSIFICATION_SCHEMA = "elasticc.v0_9_1.brokerClassification"


def scored_batch(items: list[Ingested], scores: Scores) -> ScoredBatch:
    """Gather the per-alert context of `items` into arrays next to their `scores`."""
    alerts = [i.alert for i in items]
    latest = [trigger_index(a) for a in alerts]
    return ScoredBatch(
        object_id=[a.object_id for a in alerts],
        alert_id=np.array([a.alert_id for a in alerts], dtype=np.int64),
        source_id=np.array([a.source_id for a in alerts], dtype=np.int64),
        survey=np.array([a.survey for a in alerts], dtype=object),
        ra_deg=np.array([a.ra_deg for a in alerts], dtype=np.float64),
        dec_deg=np.array([a.dec_deg for a in alerts], dtype=np.float64),
        latest_mjd_tai=np.array([a.light_curve.mjd_tai[j] for a, j in zip(alerts, latest)], dtype=np.float64),
        latest_flux_njy=np.array([a.light_curve.flux_njy[j] for a, j in zip(alerts, latest)], dtype=np.float32),
        latest_band=np.array([a.light_curve.band[j] for a, j in zip(alerts, latest)], dtype=np.int8),
        n_visits=scores.n_visits, n_detections=scores.n_detections,
        probs=scores.probs, sn_likelihood=scores.sn_likelihood, flare_likelihood=scores.flare_likelihood,
        model_version=scores.model_version, scored_ms=scores.scored_ms,
    )


def _class_probabilities(row: np.ndarray) -> list[dict]:
    return [{"classId": int(c), "probability": float(p)} for c, p in zip(CLASS_IDS, row)]


def scored_outputs(items: list[Ingested], batch: ScoredBatch, ingest_ms: int, scored_topic: str,
                   classification_topic: str) -> list[Output]:
    """One scored-alert and one classification record per input alert, in input order."""
    published_ms = time.time_ns() // 1_000_000
    classifier = f"alertformer-transformer {batch.model_version}"
    params = json.dumps({"modelVersion": batch.model_version})
    outputs = []
    for i, item in enumerate(items):
        key = batch.object_id[i].encode()
        classes = _class_probabilities(batch.probs[i])
        scored = {
            "alertId": int(batch.alert_id[i]), "sourceId": int(batch.source_id[i]),
            "objectId": batch.object_id[i], "survey": str(batch.survey[i]),
            "topic": item.topic, "partition": item.partition, "offset": item.offset,
            "surveyPublishMs": item.kafka_timestamp_ms, "ingestMs": ingest_ms,
            "scoredMs": batch.scored_ms, "publishedMs": published_ms,
            "modelVersion": batch.model_version, "classProbabilities": classes,
            "snLikelihood": float(batch.sn_likelihood[i]), "flareLikelihood": float(batch.flare_likelihood[i]),
            "nVisits": int(batch.n_visits[i]), "nDetections": int(batch.n_detections[i]),
            "raDeg": float(batch.ra_deg[i]), "decDeg": float(batch.dec_deg[i]),
            "latestMjdTai": float(batch.latest_mjd_tai[i]), "latestFluxNjy": float(batch.latest_flux_njy[i]),
            "latestBand": BAND_NAMES[batch.latest_band[i]],
        }
        classification = {
            "alertId": int(batch.alert_id[i]), "diaSourceId": int(batch.source_id[i]),
            "elasticcPublishTimestamp": item.kafka_timestamp_ms, "brokerIngestTimestamp": ingest_ms,
            "brokerName": BROKER_NAME, "brokerVersion": __version__,
            "classifierName": classifier, "classifierParams": params, "classifications": classes,
        }
        outputs.append(Output(scored_topic, avro_io.encode("alertformer.scored_alert", scored), key))
        outputs.append(Output(classification_topic, avro_io.encode_schemaless(CLASSIFICATION_SCHEMA, classification), key))
    return outputs
