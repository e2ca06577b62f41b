from core.admin_kit import readable


def test_stored_json_reads_as_a_person_would_read_it():
    assert readable({"max_p99_ms": 500.0, "steps": [20, 50, 100]}) == (
        '<table class="console-kv"><tbody><tr><th>max_p99_ms</th><td>500</td></tr>'
        "<tr><th>steps</th><td>20, 50, 100</td></tr></tbody></table>"
    )
    assert readable(["Romance", "Drama"]) == "Romance, Drama"
    assert readable(1376313) == "1,376,313"
    assert readable(0.12345) == "0.1235"
    assert readable(0.00004) == "4e-05"  # small, but not zero
    assert readable(0.0) == "0"
    assert readable(None) == readable([]) == "-"
    assert readable(True) == "yes"
    assert "<th>a</th><th>b</th>" in readable([{"a": 1}, {"b": "x"}])


def test_a_counted_column_groups_thousands_and_sorts_by_its_field():
    from django.contrib.auth.models import User

    from core.admin_kit import counted

    column = counted("last_name")  # any field: a count in recsite's own models
    assert column(User(last_name=1376313)) == "1,376,313"
    assert column(User(last_name=None)) == "-"  # type: ignore[misc]
    assert getattr(column, "admin_order_field") == "last_name"  # noqa: B009 - set by counted(), unseen by mypy
    assert getattr(column, "short_description") == "last name"  # noqa: B009
