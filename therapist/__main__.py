"""Command line for the therapist package.

    python -m therapist risk             # one patient message per stdin line -> one level per line
    python -m therapist risk --explain   # level<TAB>categories<TAB>matches (matches joined by " | ")
    python -m therapist risk --draft     # screen therapist drafts instead of patient messages
"""
from __future__ import annotations

import argparse
import sys


def _risk(args) -> int:
    from therapist.safety import assess_patient, screen_therapist_draft
    screen = screen_therapist_draft if args.draft else assess_patient
    out = sys.stdout
    for line in sys.stdin:
        a = screen(line.rstrip("\r\n"))
        if args.explain:
            out.write(f"{a.level}\t{','.join(a.categories)}\t{' | '.join(a.matches)}\n")
        else:
            out.write(a.level + "\n")
        out.flush()
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m therapist",
                                 description="TheraLab therapist tools (deterministic safety screen).")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    rp = sub.add_parser("risk", help="screen messages read one per line from stdin; print one level per line",
                        description="Read one message per line from stdin and print its risk level "
                                    "(none, low, moderate, high, imminent), one per line.")
    rp.add_argument("--explain", action="store_true",
                    help="print level<TAB>categories<TAB>matches instead of the level only")
    rp.add_argument("--draft", action="store_true",
                    help="screen therapist drafts (means information, encouragement, unsafe advice)")
    rp.set_defaults(func=_risk)
    args = ap.parse_args(argv)
    if not getattr(args, "func", None):
        ap.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
