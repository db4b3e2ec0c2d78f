"""How much a prompt injection inside a transcript moves an LLM judge's scores (eval/injection.py).

    python benchmarks/judge_injection.py [--judge default] [--rubric tes]

Prints each transcript's primary total as written and with the injected line, and the shifts,
with the judge's screen on (the stated tolerance applies) and off (delimiters only). Any catalog
model can be the judge.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    from config import load_settings
    from eval.injection import TOLERANCE, measure
    from eval.rubrics import load_rubric
    from models.catalog import Catalog
    from models.pool import ModelPool
    parser = argparse.ArgumentParser(description="judge injection check")
    parser.add_argument("--judge", default="default")
    parser.add_argument("--rubric", default="tes")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    settings = load_settings(["--data-dir", args.data_dir] if args.data_dir else [])
    backend = ModelPool(settings, Catalog(settings)).get(args.judge)
    rubric = load_rubric(args.rubric)
    for screen in (True, False):
        report = measure(backend, rubric, n_ctx=settings.n_ctx, screen=screen)
        print(f"== screen {'on' if screen else 'off (delimiters and instruction only)'}")
        for i, (plain, hit, at_max) in enumerate(report.rows, 1):
            shift = "-" if plain is None or hit is None else f"{hit - plain:+.2f}"
            print(f"transcript {i}: plain {plain}, injected {hit}, shift {shift}, "
                  f"items at max {at_max}/{report.max_items}")
        mean, top = report.mean_shift, report.largest_shift
        print(f"mean shift {'-' if mean is None else f'{mean:+.2f}'}, largest |shift| "
              f"{'-' if top is None else f'{top:.2f}'} on {rubric.scale_min}-{rubric.scale_max}; all-max injected "
              f"ratings {report.all_max}" + (f"; {'within' if report.within_tolerance() else 'OUTSIDE'} the "
                                             f"tolerance of {TOLERANCE} per transcript" if screen else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
