import json
import logging

import pytest
from pythonjsonlogger.json import JsonFormatter

from core.logcontext import ContextFilter, log_context


@pytest.fixture
def json_log():
    records: list[str] = []

    class ListHandler(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = ListHandler()
    handler.setFormatter(JsonFormatter("%(levelname)s %(name)s %(message)s"))
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("recsite.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield logger, records
    logger.removeHandler(handler)


def test_json_lines_carry_the_batch_id(json_log):
    logger, records = json_log

    with log_context(batch_id="b123"):
        logger.info("batch stored")
    logger.info("outside")

    inside, outside = (json.loads(record) for record in records)
    assert inside["batch_id"] == "b123"
    assert inside["message"] == "batch stored"
    assert "batch_id" not in outside


def test_a_callers_request_id_is_never_taken_as_ours(client):
    # Callers' ids are not unique; ours must be (provenance rows are unique on it).
    first = client.get("/metrics", headers={"X-Request-Id": "abc-123"})
    second = client.get("/metrics", headers={"X-Request-Id": "abc-123"})

    assert first["X-Request-Id"] != "abc-123"
    assert first["X-Request-Id"] != second["X-Request-Id"]
    assert len(first["X-Request-Id"]) == 32


def test_requests_without_a_sane_id_get_a_fresh_one(client):
    response = client.get("/metrics", headers={"X-Request-Id": "bad id with spaces"})

    assert len(response["X-Request-Id"]) == 32
