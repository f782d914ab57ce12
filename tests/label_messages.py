"""Label messages as a client would produce them to the labels topic (unit and integration tests of the
trainer); `tests/` is on the path through its conftest."""
from stream import avro_io
from training.labels import LABEL_SCHEMA


def label_message(object_id: str, class_id: int | None = None, class_name: str | None = None,
                  source: str = "spectrum", labeled_ms: int = 0, reference: str | None = None) -> bytes:
    """Encode a label message."""
    return avro_io.encode(LABEL_SCHEMA, {"objectId": object_id, "classId": class_id, "className": class_name,
                                         "source": source, "labeledMs": labeled_ms, "reference": reference})
