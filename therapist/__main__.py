"""Command line for the therapist package.

    python -m therapist risk             # one patient message per stdin line -> one level per line
    python -m therapist risk --explain   # level, categories, matches, the learned layer's probabilities
    python -m therapist risk --session   # the lines are one session's turns: earlier ones are context
    python -m therapist risk --rules-only   # the deterministic rules without the learned layer
    python -m therapist risk --draft     # screen therapist drafts instead of patient messages

A message the screen cannot read (a language or script it does not cover) with nothing found
prints ``none`` and, with --explain, ``unscreened`` among the matches.
"""
from __future__ import annotations

import argparse
import sys


def _explain(a) -> str:
    import json
    learned = a.learned or {}
    probs = json.dumps({"at_least": learned.get("at_least", {}), "categories": learned.get("categories", {})})
    return f"{a.level}\t{','.join(a.categories)}\t{' | '.join(a.matches)}\t{probs}"


def _risk(args) -> int:
    from therapist.safety import screen_therapist_draft
    from therapist.safety.learned import LEARNED
    from therapist.safety.screen import screen_message
    learned = None if args.rules_only else LEARNED
    out, earlier = sys.stdout, []
    for line in sys.stdin:
        text = line.rstrip("\r\n")
        if args.draft:
            a = screen_therapist_draft(text)
        else:
            a = screen_message(text, earlier, learned=learned)
            if args.session:
                earlier = (earlier + [text])[-2:]
        out.write((_explain(a) if args.explain else a.level) + "\n")
        out.flush()
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m therapist",
                                 description="TheraLab therapist tools (the patient risk screen).")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    rp = sub.add_parser("risk", help="screen messages read one per line from stdin; print one level per line",
                        description="Read one message per line from stdin and print its risk level "
                                    "(none, low, moderate, high, imminent), one per line.")
    rp.add_argument("--explain", action="store_true",
                    help="print level<TAB>categories<TAB>matches<TAB>learned probabilities (JSON)")
    rp.add_argument("--session", action="store_true",
                    help="the lines are one session's patient turns: each is screened with the two before it")
    rp.add_argument("--rules-only", action="store_true", help="the deterministic rules, without the learned layer")
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
