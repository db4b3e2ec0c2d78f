"""The therapist agent: CBT and ACT prompts, reasoning formats, safety and the session engine."""
