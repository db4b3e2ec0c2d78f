"""pyproject.toml agrees with requirements.txt: the pinned set CI installs satisfies every range the
package metadata declares, and the ``theralab`` entry point names the app's real main."""
from __future__ import annotations

import importlib
import tomllib

from packaging.requirements import Requirement

from apprunner import ROOT


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            pins[req.name.lower()] = spec.version
    return pins


def test_every_declared_dependency_is_pinned_in_requirements_and_the_pin_fits():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"]) + [d for group in project["optional-dependencies"].values() for d in group]
    pins = _pins()
    for text in declared:
        req = Requirement(text)
        assert req.name.lower() in pins, f"{req.name} is declared but not pinned in requirements.txt"
        assert req.specifier.contains(pins[req.name.lower()], prereleases=True), (text, pins[req.name.lower()])
    assert {Requirement(t).name.lower() for t in declared} == set(pins), "requirements.txt pins a package pyproject omits"


def test_the_console_script_is_the_apps_main():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, name = scripts["theralab"].partition(":")
    assert callable(getattr(importlib.import_module(module), name))
