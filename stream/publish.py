"""Output records of a scored batch: scored alerts, ELAsTiCC2 classifications, follow-up requests.

All outputs are keyed by object id, so an object's records stay in one partition, in order.
"""
import json
import time
from functools import cache

import numpy as np

from models.version import __version__
from models.bands import BAND_NAMES
from models.taxonomy import CLASS_IDS, CLASS_NAMES, ELASTICC_OUTPUT_IDS
from stream import avro_io
from stream.avro_batch import BatchRecordWriter
from stream.ingest import IngestedBatch
from stream.loop import Output
from stream.scored import ScoredBatch
from stream.score import Scores
from stream.window import Windows, first_detection_mjd_tai

BROKER_NAME = "alertformer"
SCORED_SCHEMA = "alertformer.scored_alert"
CLASSIFICATION_SCHEMA = "elasticc.v0_9_1.brokerClassification"
CLASS_IDS_ARRAY = np.asarray(CLASS_IDS, dtype=np.int64)  # (C,)
ELASTICC_IDS_ARRAY = np.asarray(ELASTICC_OUTPUT_IDS, dtype=np.int64)  # (C,) alertformer's own classes as Residual
CLASS_NAMES_ARRAY = np.asarray(CLASS_NAMES, dtype=object)  # (C,)
BAND_NAMES_ARRAY = np.asarray(BAND_NAMES, dtype=object)  # indexed by band code


def scored_batch(ingested: IngestedBatch, scores: Scores, windows: Windows) -> ScoredBatch:
    """The alerts of `ingested` as a `ScoredBatch`: their columns next to their `scores` and scored `windows`."""
    alerts = ingested.alerts
    own = alerts.curves
    latest = own.offsets[:-1] + windows.trigger_index  # (B,) the triggering source, found by the window step
    return ScoredBatch(
        object_id=alerts.object_id.tolist(), alert_id=alerts.alert_id, source_id=alerts.source_id,
        survey=alerts.survey, ra_deg=alerts.ra_deg, dec_deg=alerts.dec_deg,
        latest_mjd_tai=own.mjd_tai[latest], latest_flux_njy=own.flux_njy[latest], latest_band=own.band[latest],
        n_visits=scores.n_visits, n_detections=scores.n_detections,
        probs=scores.probs, sn_likelihood=scores.sn_likelihood, flare_likelihood=scores.flare_likelihood,
        model_version=scores.model_version, scored_ms=scores.scored_ms, context=alerts.context,
        window_first_detection_mjd_tai=first_detection_mjd_tai(windows.curves),
    )


@cache
def _writers() -> tuple[BatchRecordWriter, BatchRecordWriter]:
    """The scored-alert (single-object encoding) and classification (schemaless) writers."""
    return (BatchRecordWriter(avro_io.load_schema(SCORED_SCHEMA),
                              avro_io.SINGLE_OBJECT_MAGIC + avro_io.schema_fingerprint(SCORED_SCHEMA)),
            BatchRecordWriter(avro_io.load_schema(CLASSIFICATION_SCHEMA)))


def scored_outputs(ingested: IngestedBatch, batch: ScoredBatch, ingest_ms: int, scored_topic: str,
                   classification_topic: str) -> list[Output]:
    """One scored-alert and one classification record per input alert, in input order."""
    n = len(ingested)
    published_ms = time.time_ns() // 1_000_000
    classes = (CLASS_IDS_ARRAY, batch.probs)
    top = batch.probs.argmax(axis=1)  # (n,) model output index of each alert's most probable class
    publish_ms = ingested.kafka_timestamp_ms
    scored_writer, classification_writer = _writers()
    scored = scored_writer.write({
        "alertId": batch.alert_id, "sourceId": batch.source_id, "objectId": batch.object_id,
        "survey": batch.survey.tolist(), "topic": ingested.topic, "partition": ingested.partition,
        "offset": ingested.offset,
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
    for message, object_id, scored_value, classification_value in zip(ingested.messages, batch.object_id, scored,
                                                                      classifications):
        key = object_id.encode()
        outputs.append(Output(scored_topic, scored_value, key, source=message))
        outputs.append(Output(classification_topic, classification_value, key, source=message))
    return outputs
