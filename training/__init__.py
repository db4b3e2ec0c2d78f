"""Training: synthetic transcripts, dataset building, SFT / ORPO / judge-SFT, GGUF export, recipes."""
