"""Backends declare what they can do (``Capabilities``), and the pool builds each backend kind
through one table of builders (``register_builder``), instead of callers probing attributes and
tests patching ``ModelPool._build``."""
from __future__ import annotations

import pytest

from models import pool as pool_module
from models.base import Capabilities, GenParams
from models.catalog import CatalogEntry
from models.fake_backend import FakeBackend
from models.hf_backend import HFBackend
from models.openai_backend import OpenAIBackend
from vocabulary import BACKENDS, LOCAL_BACKENDS


def test_each_backend_class_declares_its_capabilities():
    assert FakeBackend.capabilities == Capabilities(prefix=True, json_schema=True)
    assert HFBackend.capabilities.prefix and not HFBackend.capabilities.json_schema
    assert OpenAIBackend.capabilities == Capabilities(prefix=False, json_schema=True)


def test_every_buildable_kind_has_a_builder_and_the_fake_needs_a_script(settings):
    from models.catalog import Catalog
    assert set(pool_module.BUILDERS) == set(BACKENDS) - {"fake"} and set(LOCAL_BACKENDS) <= set(pool_module.BUILDERS)
    catalog = Catalog(settings)
    catalog.add(CatalogEntry("scripted", "Scripted", "fake", source="test"))
    pool = pool_module.ModelPool(settings, catalog)
    with pytest.raises(ValueError, match="no builder for backend 'fake'"):
        pool.get("scripted")


def test_a_registered_builder_builds_its_kind(settings, monkeypatch):
    from models.catalog import Catalog
    monkeypatch.setattr(pool_module, "BUILDERS", dict(pool_module.BUILDERS))
    built = []

    def scripted(pool, entry):
        built.append(entry.id)
        return FakeBackend(entry.id, replies=lambda messages: "From the script.")
    pool_module.register_builder("fake", scripted)
    catalog = Catalog(settings)
    catalog.add(CatalogEntry("scripted", "Scripted", "fake", source="test"))
    pool = pool_module.ModelPool(settings, catalog)
    backend = pool.get("scripted")
    assert pool.get("scripted") is backend and built == ["scripted"]  # built once, then shared
    assert backend.stream([{"role": "user", "content": "hi"}], GenParams()).text() \
        == "From the script."


def test_the_engine_opens_think_only_for_a_backend_that_can_continue_a_prefix(settings):
    """A reasoning model behind an endpoint that cannot continue a prefix is not given one."""
    from services import build_services

    class NoPrefix(FakeBackend):
        capabilities = Capabilities(prefix=False, json_schema=True)

    svc = build_services(settings)
    try:
        svc.engine.record_consent(None, "test")
        for model_id, cls in (("with-prefix", FakeBackend), ("without-prefix", NoPrefix)):
            svc.catalog.add(CatalogEntry(model_id, model_id, "fake", reasoning="think", source="test"))
            svc.pool.register(model_id, cls(model_id, replies=lambda m: "<think>weighing it</think>I hear you."))
        for model_id in ("with-prefix", "without-prefix"):
            sid = svc.engine.start("act", model_id)["id"]
            list(svc.engine.turn(sid, "I have had a hard week."))
        calls = {m: svc.pool.get(m).calls for m in ("with-prefix", "without-prefix")}
        assert calls["with-prefix"][0][0][-1].get("prefix") is True
        assert all(not call[0][-1].get("prefix") for call in calls["without-prefix"])
    finally:
        svc.store.close()
