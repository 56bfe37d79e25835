"""Figures that reliability tests measure, printed as one table at the end of the pytest run."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class ReliabilityFigures:
    tried: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    duplicated: int = 0
    notes: list[str] = field(default_factory=list)


REPORT: dict[str, ReliabilityFigures] = {}


def figures(name: str) -> ReliabilityFigures:
    return REPORT.setdefault(name, ReliabilityFigures())


def render() -> list[str]:
    if not REPORT:
        return []
    lines = [f"{'test':<34}{'tried':>8}{'accepted':>10}{'lost':>6}{'dup':>6}  rejected by reason"]
    for name, row in REPORT.items():
        reasons = ", ".join(f"{reason} {count}" for reason, count in row.rejected.most_common())
        lines.append(f"{name:<34}{row.tried:>8}{row.accepted:>10}{row.lost:>6}{row.duplicated:>6}  {reasons or '-'}")
        lines.extend(f"{'':<34}  {note}" for note in row.notes)
    return lines
