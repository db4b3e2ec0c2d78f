"""Simulated patients: persona library and sampler, importers, the patient agent, batch simulation."""
