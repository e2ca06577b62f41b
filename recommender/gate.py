"""The gate: one pure derivation, from a candidate's held-out figures to rows and a verdict.

Each check is a row (what is checked, the figure, the bound, pass or fail, and why it failed);
the verdict is derived from the rows (every one passes), and both are stored on the version so
the console, the notification and the release process read the same decision. As in
``releases/analysis.py``, nothing here touches the database.

The checks:

- the rating model's RMSE is measured and below ``max_rmse``;
- the ranker's NDCG@10 is measured and not below the most-popular list's on the same split
  (a personal list worse than everyone's list helps nobody: selection would have chosen
  popularity);
- against the stable version, when there is one: RMSE not worse by more than
  ``rmse_tolerance``, NDCG@10 not worse by more than ``ndcg_tolerance``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Figures:
    """A version's held-out figures, as the gate reads them (``None``: not measured)."""

    rmse: float | None
    ndcg: float | None
    popularity_ndcg: float | None = None
    version: int | None = None

    @classmethod
    def of_metrics(cls, metrics: dict[str, Any], *, version: int | None = None) -> Figures:
        popularity = metrics.get("popularity") or {}
        return cls(
            rmse=metrics.get("rmse"),
            ndcg=metrics.get("ndcg@10"),
            popularity_ndcg=popularity.get("ndcg@10"),
            version=version,
        )


@dataclass(frozen=True)
class Bounds:
    max_rmse: float
    rmse_tolerance: float
    ndcg_tolerance: float


@dataclass(frozen=True)
class GateCheck:
    check: str
    figure: float | None
    bound: str
    passed: bool
    reason: str = ""  # why it did not pass

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GateCheck:
        return cls(**{key: values[key] for key in ("check", "figure", "bound", "passed", "reason") if key in values})


def gate_checks(*, candidate: Figures, stable: Figures | None, bounds: Bounds) -> list[GateCheck]:
    """The gate's rows for ``candidate``, against ``stable`` when there is one."""
    rmse, ndcg = candidate.rmse, candidate.ndcg
    rows = [
        GateCheck(
            "RMSE below the bound",
            rmse,
            f"< {bounds.max_rmse}",
            rmse is not None and rmse < bounds.max_rmse,
            "no RMSE: the held-out split had no ratings"
            if rmse is None
            else f"RMSE {rmse:.4f} is not below {bounds.max_rmse}",
        )
    ]
    popularity = candidate.popularity_ndcg
    if ndcg is None:
        rows.append(
            GateCheck(
                "NDCG@10 not below popularity's",
                None,
                ">= popularity's",
                False,
                "no NDCG@10: the held-out split had no viewers with held-out items",
            )
        )
    elif popularity is not None:
        rows.append(
            GateCheck(
                "NDCG@10 not below popularity's",
                ndcg,
                f">= {popularity:.4f}",
                ndcg >= popularity,
                f"NDCG@10 {ndcg:.4f} is below the most-popular list's {popularity:.4f} on the same split",
            )
        )
    if stable is not None:
        name = f"stable v{stable.version}" if stable.version is not None else "stable"
        if stable.rmse is not None:
            bound = stable.rmse + bounds.rmse_tolerance
            rows.append(
                GateCheck(
                    f"RMSE not worse than {name}",
                    rmse,
                    f"<= {bound:.4f} ({stable.rmse:.4f} + {bounds.rmse_tolerance})",
                    rmse is not None and rmse <= bound,
                    f"RMSE {_shown(rmse)} is worse than {name}'s {stable.rmse:.4f} "
                    f"by more than {bounds.rmse_tolerance}",
                )
            )
        if stable.ndcg is not None:
            bound = stable.ndcg - bounds.ndcg_tolerance
            rows.append(
                GateCheck(
                    f"NDCG@10 not worse than {name}",
                    ndcg,
                    f">= {bound:.4f} ({stable.ndcg:.4f} - {bounds.ndcg_tolerance})",
                    ndcg is not None and ndcg >= bound,
                    f"NDCG@10 {_shown(ndcg)} is worse than {name}'s {stable.ndcg:.4f} "
                    f"by more than {bounds.ndcg_tolerance}",
                )
            )
    return rows


def gate_passed(checks: list[GateCheck]) -> bool:
    """The verdict, derived from the rows: every check passes."""
    return all(check.passed for check in checks)


def gate_reasons(checks: list[GateCheck]) -> list[str]:
    return [check.reason for check in checks if not check.passed]


def _shown(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.4f}"
