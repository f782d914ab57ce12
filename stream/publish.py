"""Output records of a scored batch: scored alerts, ELAsTiCC2 classifications, follow-up requests.

All outputs are keyed by object id, so an object's records stay in one partition, in order.
"""
import json
import time
from functools import cache

import numpy as np

from models.version import __version__
from models.bands import BAND_NAMES
from models.context import N_CONTEXT
from models.lightcurve import LightCurve
from models.taxonomy import CLASS_IDS, CLASS_NAMES, ELASTICC_OUTPUT_IDS
from stream import avro_io
from stream.avro_batch import BatchRecordWriter
from stream.ingest import Ingested
from stream.loop import Output
from stream.scored import ScoredBatch
from stream.score import Scores
from stream.window import first_detection_mjd_tai, trigger_index

BROKER_NAME = "alertformer"
SCORED_SCHEMA = "alertformer.scored_alert"
CLASSIFICATION_SCHEMA = "elasticc.v0_9_1.brokerClassification"
CLASS_IDS_ARRAY = np.asarray(CLASS_IDS, dtype=np.int64)  # (C,)
ELASTICC_IDS_ARRAY = np.asarray(ELASTICC_OUTPUT_IDS, dtype=np.int64)  # (C,) alertformer's own classes as Residual
CLASS_NAMES_ARRAY = np.asarray(CLASS_NAMES, dtype=object)  # (C,)
BAND_NAMES_ARRAY = np.asarray(BAND_NAMES, dtype=object)  # indexed by band code


def scored_batch(items: list[Ingested], scores: Scores, windows: list[LightCurve]) -> ScoredBatch:
    """Gather the per-alert context of `items` into arrays next to their `scores` and scored `windows`."""
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
        context=np.stack([a.context for a in alerts]) if alerts else np.empty((0, N_CONTEXT)),
        window_first_detection_mjd_tai=first_detection_mjd_tai(windows),
    )


@cache
def _writers() -> tuple[BatchRecordWriter, BatchRecordWriter]:
    """The scored-alert (single-object encoding) and classification (schemaless) writers."""
    return (BatchRecordWriter(avro_io.load_schema(SCORED_SCHEMA),
                              avro_io.SINGLE_OBJECT_MAGIC + avro_io.schema_fingerprint(SCORED_SCHEMA)),
            BatchRecordWriter(avro_io.load_schema(CLASSIFICATION_SCHEMA)))


def scored_outputs(items: list[Ingested], batch: ScoredBatch, ingest_ms: int, scored_topic: str,
                   classification_topic: str) -> list[Output]:
    """One scored-alert and one classification record per input alert, in input order."""
    n = len(items)
    published_ms = time.time_ns() // 1_000_000
    classes = (CLASS_IDS_ARRAY, batch.probs)
    top = batch.probs.argmax(axis=1)  # (n,) model output index of each alert's most probable class
    publish_ms = np.fromiter((i.kafka_timestamp_ms for i in items), dtype=np.int64, count=n)
    scored_writer, classification_writer = _writers()
    scored = scored_writer.write({
        "alertId": batch.alert_id, "sourceId": batch.source_id, "objectId": batch.object_id,
        "survey": batch.survey.tolist(), "topic": [i.topic for i in items],
        "partition": np.fromiter((i.partition for i in items), dtype=np.int64, count=n),
        "offset": np.fromiter((i.offset for i in items), dtype=np.int64, count=n),
        "surveyPublishMs": publish_ms, "ingestMs": ingest_ms, "scoredMs": batch.scored_ms,
        "publishedMs": published_ms, "modelVersion": batch.model_version, "classProbabilities": classes,
        "snLikelihood": batch.sn_likelihood, "flareLikelihood": batch.flare_likelihood,
        "nVisits": batch.n_visits, "nDetections": batch.n_detections, "raDeg": batch.ra_deg, "decDeg": batch.dec_deg,
        "latestMjdTai": batch.latest_mjd_tai, "latestFluxNjy": batch.latest_flux_njy,
        "latestBand": BAND_NAMES_ARRAY[batch.latest_band].tolist(),
        "topClassId": CLASS_IDS_ARRAY[top], "topClass": CLASS_NAMES_ARRAY[top].tolist(),
    }, n)
    classifications = classification_writer.write({
        "alertId": batch.alert_id, "diaSourceId": batch.source_id, "elasticcPublishTimestamp": publish_ms,
        "brokerIngestTimestamp": ingest_ms, "brokerName": BROKER_NAME, "brokerVersion": __version__,
        "classifierName": f"alertformer-transformer {batch.model_version}",
        "classifierParams": json.dumps({"modelVersion": batch.model_version}),
        "classifications": (ELASTICC_IDS_ARRAY, batch.probs),
    }, n)
    outputs = []
    for item, object_id, scored_value, classification_value in zip(items, batch.object_id, scored, classifications):
        key = object_id.encode()
        outputs.append(Output(scored_topic, scored_value, key, source=item.message))
        outputs.append(Output(classification_topic, classification_value, key, source=item.message))
    return outputs
