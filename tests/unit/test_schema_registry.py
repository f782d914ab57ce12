"""Rubin packets whose schema id the bundled lsst-alert-packet schemas lack: looked up in a schema registry
(served here by a small local HTTP server speaking the registry's REST endpoint), once per id."""
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace

import pytest
from fastavro.schema import to_parsing_canonical_form

from stream.config import SchemaRegistrySettings
from stream.decode import encode_rubin, rubin_schema
from stream.decode._avro import WIRE_HEADER
from stream.decode.registry import RegistrySchemas, registry_schemas
from stream.ingest import Ingest
from stream import avro_io

NEW_ID = 4242  # a schema published after this installation


@pytest.fixture
def registry_server():
    """``(url, requests)``: GET /schemas/ids/4242 answers the lsst.v10_0 schema; any other id 404."""
    requests = []
    schema = to_parsing_canonical_form(rubin_schema("10.0"))

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append((self.path, self.headers.get("Authorization")))
            if self.path.split("?")[0] == f"/schemas/ids/{NEW_ID}":
                body, status = json.dumps({"schema": schema}).encode(), 200
            else:
                body, status = json.dumps({"error_code": 40403, "message": "Schema not found"}).encode(), 404
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", requests
    server.shutdown()


def packet(source_id: int, schema_id: int = NEW_ID) -> SimpleNamespace:
    source = {"diaSourceId": source_id, "diaObjectId": 7, "visit": 3, "midpointMjdTai": 61000.5, "band": "r",
              "psfFlux": 150.0, "psfFluxErr": 10.0, "ra": 1.0, "dec": 2.0}
    body = encode_rubin({"diaSourceId": source_id, "diaSource": source}, "10.0", wire_format=False,
                        fill_defaults=True)
    value = WIRE_HEADER.pack(0, schema_id) + body
    return SimpleNamespace(topic=lambda: "alerts", partition=lambda: 0, offset=lambda: source_id, key=lambda: b"7",
                           value=lambda: value, timestamp=lambda: (1, 0), headers=lambda: None)


def _registry(url: str, **auth) -> RegistrySchemas:
    return registry_schemas(SimpleNamespace(schema_registry=SchemaRegistrySettings(url=url, **auth)))


def test_unknown_schema_id_decodes_through_the_registry_once(registry_server):
    url, requests = registry_server
    ingest = Ingest({"alerts": "auto"}, "dead", registry=_registry(url, username="me", password="s3cret"))
    good, dead = ingest([packet(1)])
    assert not dead and good[0].alert.object_id == "7" and good[0].alert.light_curve.flux_njy.tolist() == [150.0]
    assert [path for path, _ in requests] == [f"/schemas/ids/{NEW_ID}"]
    assert requests[0][1].startswith("Basic ")  # the credentials went along
    good, dead = ingest([packet(2), packet(3)])
    assert len(good) == 2 and not dead
    assert len(requests) == 1, "the second packet of the id made a request"


def test_id_the_registry_lacks_is_a_dead_letter_with_the_reason(registry_server):
    url, _ = registry_server
    good, dead = Ingest({"alerts": "rubin"}, "dead", registry=_registry(url))([packet(1, schema_id=4243)])
    reason = avro_io.decode(dead[0].value)[1]["reason"]
    assert not good and "schema id 4243: the schema registry at http://127.0.0.1" in reason and "404" in reason


def test_without_a_registry_an_unknown_id_is_a_dead_letter_as_before():
    good, dead = Ingest({"alerts": "auto"}, "dead")([packet(1)])
    reason = avro_io.decode(dead[0].value)[1]["reason"]
    assert not good and reason.startswith(f"unknown Rubin schema id {NEW_ID} (known: 700")


def test_unreachable_registry_is_a_dead_letter_and_asked_again():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ingest = Ingest({"alerts": "auto"}, "dead", registry=_registry(f"http://127.0.0.1:{port}"))
    good, dead = ingest([packet(1)])
    assert not good and "did not answer" in avro_io.decode(dead[0].value)[1]["reason"]
