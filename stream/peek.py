"""Print the committed messages of one of alertformer's own topics as JSON lines.

    python -m stream.peek alertformer.deadletter --max 10
"""
import argparse
import base64
import json
import sys
import uuid

from confluent_kafka import Consumer

from stream import avro_io
from stream.config import load_config
from stream.errors import BadPacket

IDLE_TIMEOUT_S = 3.0


def _jsonable(value):
    if isinstance(value, bytes):
        return {"bytes_b64": base64.b64encode(value[:256]).decode(), "length": len(value)}
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream.peek", description=__doc__.split("\n\n")[0])
    parser.add_argument("topic")
    parser.add_argument("--config", help="TOML config file")
    parser.add_argument("--max", type=int, default=100, help="stop after this many messages")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    consumer = Consumer(config.kafka.client_config() | {
        "group.id": f"peek-{uuid.uuid4()}", "auto.offset.reset": "earliest",
        "isolation.level": "read_committed", "enable.auto.commit": False})
    consumer.subscribe([args.topic])
    shown = 0
    while shown < args.max:
        msg = consumer.poll(IDLE_TIMEOUT_S)
        if msg is None:
            break
        if msg.error():
            continue
        try:
            name, record = avro_io.decode(msg.value())
            line = {"schema": name} | {k: _jsonable(v) for k, v in record.items()}
        except BadPacket as err:
            line = {"undecodable": str(err), "offset": msg.offset()}
        print(json.dumps(line))
        shown += 1
    consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
