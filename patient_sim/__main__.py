"""``python -m patient_sim``: personas for simulated patients, from the shell.

    import-personas FILE                         import a standardized-profile JSON file (idempotent)
    personas [--modality act|cbt]                list the shipped library and the stored personas
    personas --sample N [--seed S] [--save]      print (and optionally store) N sampled personas

Exit codes: 0 done, 2 bad input (nothing stored). To add a subcommand, write a ``_register_x``
function (adds its parser) and a ``_run_x(args, ctx)`` handler, and add one line to ``COMMANDS``.
"""
from __future__ import annotations

import argparse
import sys
import textwrap

from patient_sim.batch import add_simulate_parser, plan, resolve_personas, run_batch
from patient_sim.importer import import_profiles
from patient_sim.personas import Persona, PersonaError, load_library, persona_store
from patient_sim.sampler import sample_personas
from jobs import cli
from jobs.cli import Command, Context
from store.personas import PersonaStoreError
from vocabulary import SESSION_MODALITIES


# --- import-personas -------------------------------------------------------------------------


def _register_import(sub, name: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help="import standardized patient profiles (JSON list) as ACT personas",
                            description="Validate every record first; a bad record stops the import and "
                                        "nothing is stored. Profiles already present are skipped.")
    parser.add_argument("file", help="JSON file: a list of profile records")
    return parser


def _run_import(args, ctx: Context) -> int:
    personas = import_profiles(args.file)
    created, skipped = persona_store(ctx.store).upsert_many(personas)
    print(f"imported {created}, skipped {skipped} (already present)")
    return 0


# --- personas -------------------------------------------------------------------------------


def _register_personas(sub, name: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help="list personas, or sample new ones",
                            description="Without --sample: the shipped library plus every stored persona. "
                                        "With --sample N: N personas drawn from the CBT study's characteristics "
                                        "(ACT ones also get an archetype); the same --seed gives the same people.")
    parser.add_argument("--modality", choices=SESSION_MODALITIES, help="only this modality (sampling: default cbt)")
    parser.add_argument("--sample", type=int, metavar="N", help="print N sampled personas instead of the list")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed (default 0)")
    parser.add_argument("--save", action="store_true", help="with --sample: also store the sampled personas")
    parser.add_argument("--teacher", metavar="MODEL", help="with --sample: a catalog model writes each sampled "
                        "person's full profile (backstory, symptoms, onset, history, coping, goals...)")
    return parser


def _run_personas(args, ctx: Context) -> int:
    if args.sample is None:
        if args.save:
            raise PersonaError("--save only goes with --sample N")
        return _list_personas(args.modality, ctx)
    if args.sample < 1:
        raise PersonaError("--sample must be at least 1")
    personas = sample_personas(args.sample, args.seed, args.modality or "cbt")
    if args.teacher:
        personas = _expand(personas, args.teacher, ctx)
    for persona in personas:
        _print_persona(persona)
    if args.save:
        created, skipped = persona_store(ctx.store).upsert_many(personas)
        print(f"saved {created}, skipped {skipped} (already present)")
    return 0


def _expand(personas: list[Persona], teacher: str, ctx: Context) -> list[Persona]:
    """The optional teacher step, with any catalog backend (local GGUF, transformers, endpoint)."""
    from models.catalog import Catalog, CatalogError
    from models.pool import ModelPool
    from patient_sim.sampler import expand_with_teacher
    catalog = Catalog(ctx.settings)
    try:
        catalog.get(teacher)
    except CatalogError as exc:
        raise PersonaError(str(exc)) from None
    backend = ModelPool(ctx.settings, catalog).get(teacher)
    return [expand_with_teacher(p, backend) for p in personas]


def _list_personas(modality: str | None, ctx: Context) -> int:
    wanted = (modality, "any") if modality else None
    library = load_library()
    known = {p.id for p in library}
    stored = [p for p in persona_store(ctx.store).list() if p.id not in known]
    shown = [p for p in library + stored if wanted is None or p.modality in wanted]
    for p in shown:
        print(f"{p.id:<20} {p.modality:<4} {p.source:<9} {p.style:<11} {_kind(p):<26} {p.name}")
    print(f"{len(shown)} personas ({sum(p.source == 'library' for p in shown)} from the library)")
    return 0


def _kind(persona: Persona) -> str:
    if persona.archetype:
        return persona.archetype
    severity, engagement = persona.profile.get("severity"), persona.profile.get("engagement")
    return f"{severity} / {engagement} engagement" if severity else "-"


def _print_persona(persona: Persona) -> None:
    print(f"== {persona.id}  {persona.name}  ({persona.modality}, {_kind(persona)}, style {persona.style})")
    print(textwrap.fill(persona.summary, width=100))
    if persona.opening:
        print(f"Opening: {persona.opening}")
    print()


# --- wiring -----------------------------------------------------------------------------------


def simulate_command(args, ctx) -> int:
    """``python -m patient_sim simulate ...``: plan, run (or resume) and summarise in one line."""
    from services import build_services  # an entry point: the one place Services is built
    from jobs.reporter import JobReporter
    settings = ctx.settings
    services = build_services(settings)
    reporter = JobReporter.from_args(getattr(args, "job_id", None), settings.data_dir, services.store)
    reporter.on_cancel()
    with reporter.guard():
        try:
            for model_id in [*args.therapist, args.patient_model]:
                services.catalog.get(model_id)
            personas = resolve_personas(services.personas, args.personas, args.seed, args.modality)
        except (KeyError, ValueError, LookupError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            reporter.fail(str(exc))
            return 2
        specs = plan(personas, args.therapist, args.patient_model, args.turns, args.repeats, args.study,
                     args.modality, args.course_sessions)
        summary = run_batch(services.engine, specs, args.concurrency, reporter=reporter)
        print(summary.line())
        for key, error in summary.failed:
            print(f"  failed {key}: {error}", file=sys.stderr)
        reporter.done({"ran": summary.ran, "skipped": summary.skipped, "restarted": summary.restarted,
                       "failed": len(summary.failed), "line": summary.line()})
    return 1 if summary.failed else 0


COMMANDS: dict[str, Command] = {
    "import-personas": Command(_register_import, _run_import),
    "personas": Command(_register_personas, _run_personas),
    "simulate": Command(add_simulate_parser, simulate_command),
}


def build_parser():
    return cli.build_parser("python -m patient_sim", "TheraLab simulated patients", COMMANDS)


def main(argv: list[str] | None = None) -> int:
    return cli.run_main(build_parser(), COMMANDS, argv, (PersonaError, PersonaStoreError))


if __name__ == "__main__":
    sys.exit(main())
