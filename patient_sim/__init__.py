"""Simulated patients: persona library and sampler, importers, the patient agent, batch simulation.

Personas (``personas``: the Persona dataclass, STYLES, ARCHETYPES and the shipped library in
``library/``), the sampler and teacher step (``sampler``), the standardized-profile importer
(``importer``); ``python -m patient_sim --help`` lists the command line.
"""
