def test_groups_sort_in_their_natural_order_with_unknown_last():
    from catalog.demographics import group_order

    ages = ["unknown", "55+", "<18", "25-34", "18-24"]
    jobs = ["writer", "unknown", "K-12 student", "academic/educator"]
    crossed = ["male 25-34", "female unknown", "female <18", "unknown 18-24", "male <18"]

    def ordered(dimension: str, labels: list[str]) -> list[str]:
        return sorted(labels, key=lambda label: group_order(dimension, label))

    assert ordered("age", ages) == ["<18", "18-24", "25-34", "55+", "unknown"]
    assert ordered("occupation", [*jobs, "other"]) == [
        "academic/educator",
        "K-12 student",
        "other",
        "writer",
        "unknown",
    ]
    assert ordered("gender", ["unknown", "other", "female", "male"]) == ["male", "female", "other", "unknown"]
    assert ordered("gender x age", crossed) == [
        "male <18",
        "male 25-34",
        "female <18",
        "female unknown",
        "unknown 18-24",
    ]
