"""The one row format every benchmark reports in, so ``python -m benchmarks`` can put them in a table.

A benchmark given ``--figures PATH`` appends its rows there as JSON lines: the figure, our
number, the baseline measured in the same run (or None where there is no fair one), the ratio
ours / baseline, the target, and the unit.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Figure:
    figure: str
    ours: float
    baseline: float | None = None
    target: str = ""
    unit: str = ""
    source: str = ""

    @property
    def ratio(self) -> float | None:
        return round(self.ours / self.baseline, 3) if self.baseline else None

    def as_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio}


def add_figures_argument(parser) -> None:
    parser.add_argument("--figures", type=Path, help="append this run's figures here as JSON lines "
                                                     "(used by python -m benchmarks)")


def write_figures(path: Path | None, figures: list[Figure]) -> None:
    if path is None:
        return
    with open(path, "a", encoding="utf-8") as fh:
        for f in figures:
            fh.write(json.dumps(f.as_dict()) + "\n")


def read_figures(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _num(value) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def markdown_table(rows: list[dict]) -> str:
    dated = any(r.get("measured") for r in rows)
    lines = ["| figure | ours | baseline (same run) | ratio | target | benchmark |" + (" measured |" if dated else ""),
             "|---|---|---|---|---|---|" + ("---|" if dated else "")]
    for r in rows:
        unit = f" {r['unit']}" if r.get("unit") else ""
        ratio = "—" if r.get("ratio") is None else f"**{r['ratio']:.2f}**"
        lines.append(f"| {r['figure']} | {_num(r['ours'])}{unit} | {_num(r.get('baseline'))}"
                     f"{unit if r.get('baseline') is not None else ''} | {ratio} | {r.get('target') or '—'} "
                     f"| `{r.get('source', '')}` |" + (f" {r.get('measured') or '—'} |" if dated else ""))
    return "\n".join(lines)
