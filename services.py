"""Wires the domain objects the app needs: store, audit, catalog, model pool, session engine.

Built once by ``app.py`` (or a test) and handed to the UI; no module reaches for globals.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from config import Settings
from jobs.runner import JobRunner
from models.catalog import Catalog
from models.pool import ModelPool
from store.audit import AuditLog
from store.consents import ConsentStore
from store.db import Store
from store.flags import FlagStore
from store.sessions import SessionStore
from store.supervision import DraftStore, NoteStore
from store.users import UserStore
from therapist.session import SessionEngine
from vocabulary import EventKind


@dataclass
class Services:
    settings: Settings
    store: Store
    audit: AuditLog
    sessions: SessionStore
    flags: FlagStore
    catalog: Catalog
    pool: ModelPool
    engine: SessionEngine
    users: UserStore
    drafts: DraftStore
    notes: NoteStore
    personas: object  # store.personas.PersonaStore returning patient_sim Persona objects
    jobs: JobRunner
    # Fixed at start-up: with accounts, everyone signs in; without, one researcher on loopback.
    sign_in: bool = False


def build_services(settings: Settings) -> Services:
    store = Store(settings.db_path)
    audit = AuditLog(store)
    sessions = SessionStore(store)
    flags = FlagStore(store)
    catalog = Catalog(settings)
    pool = ModelPool(settings, catalog, on_event=lambda event: audit_worker_event(audit, event))
    drafts = DraftStore(store)
    engine = SessionEngine(settings, sessions, catalog, pool, audit, flags, drafts, ConsentStore(store))
    users = UserStore(store)
    from patient_sim.personas import persona_store
    personas = persona_store(store)
    personas.ensure_library()
    jobs = JobRunner(store, settings.data_dir, audit, settings)
    jobs.jobs.reconcile()  # a job whose process died while the app was down shows as failed
    engine.abandon_idle()  # sessions left open while the app was down, idle past the limit
    from eval.runs import settle_runs
    jobs.on_ended.append(lambda job_id: settle_runs(store))  # a judge run its job left "running"
    settle_runs(store)
    return Services(settings, store, audit, sessions, flags, catalog, pool, engine, users, drafts,
                    NoteStore(store), personas, jobs, sign_in=users.count() > 0)


def audit_worker_event(audit: AuditLog, event) -> None:
    """A model worker crashed, restarted or was paused: the supervisor's record of it."""
    audit.record("system", EventKind(f"model.worker_{event.kind}"), event.worker, pid=event.pid, detail=event.detail,
                 in_flight=event.in_flight, **({"restart_ms": event.ms} if event.ms is not None else {}))


def preload_default(services: Services) -> threading.Thread:
    """Load the default model, and the risk screen's encoder, in the background so the first turn
    does not wait for them."""
    def load():
        if services.settings.risk_learned:
            try:
                from therapist.safety.learned import LEARNED
                LEARNED.warm()
            except Exception as exc:  # the rules still screen every message; the flag says why
                services.audit.record("system", EventKind.RISK_LEARNED_UNAVAILABLE, None, error=str(exc)[:200])
        try:
            services.pool.get("default")
        except Exception as exc:  # reported on first use as well; never kills start-up
            services.audit.record("system", EventKind.MODEL_PRELOAD_FAILED, "default", error=str(exc))
    thread = threading.Thread(target=load, name="preload-default", daemon=True)
    thread.start()
    return thread
