"""Model backends (llama.cpp, transformers, OpenAI-compatible, fake), the catalog and the embedded default."""
