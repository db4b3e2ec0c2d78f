"""The jobs room: typed specs that launch long work (training recipes, studies, job settings)."""
