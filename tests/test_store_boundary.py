"""Only ``store/`` runs SQL on the store's tables: every other package of the app calls store methods.

Read from the source with ``ast`` (nothing is imported), so a new raw query anywhere in the app's
packages fails here with its file and line. Looked for: a call of ``execute``, ``executemany``,
``executescript``, ``query``, ``rows_where``, ``insert``/``insert_all``/``upsert``/``upsert_all`` on
a table taken by subscript (``db["sessions"].insert``), any subscript of a name or attribute called
``db`` with a string (``store.db["turns"]``), and string literals that read as SQL on a table.
``benchmarks/`` and ``tests/`` are outside observers of the database file and are not checked.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ["eval", "patient_sim", "training", "therapist", "ui", "models", "jobs",
           "app.py", "services.py", "config.py", "processes.py"]
SQL_CALLS = {"execute", "executemany", "executescript", "query", "rows_where"}
TABLE_CALLS = {"insert", "insert_all", "upsert", "upsert_all", "delete_where", "update"}
SQL_TEXT = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b", re.I | re.S)


def _files():
    for name in CHECKED:
        path = ROOT / name
        yield from (sorted(path.rglob("*.py")) if path.is_dir() else [path])


def _is_db(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id == "db") or (isinstance(node, ast.Attribute) and node.attr == "db")


def _problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    where = path.relative_to(ROOT).as_posix()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attr, owner = node.func.attr, node.func.value
            if attr in SQL_CALLS and not (attr == "query" and not _is_db(owner)):
                found.append(f"{where}:{node.lineno}: .{attr}(...)")
            elif attr in TABLE_CALLS and isinstance(owner, ast.Subscript) and _is_db(owner.value):
                found.append(f"{where}:{node.lineno}: db[...].{attr}(...)")
        elif isinstance(node, ast.Subscript) and _is_db(node.value):
            found.append(f"{where}:{node.lineno}: db[...]")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_TEXT.search(node.value):
            found.append(f"{where}:{node.lineno}: SQL text {node.value.strip()[:50]!r}")
    return found


def test_no_sql_on_store_tables_outside_store():
    problems = [p for path in _files() for p in _problems(path)]
    assert not problems, "raw SQL outside store/ (add a store method instead):\n" + "\n".join(problems)


def test_the_check_finds_each_kind_of_raw_query(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('def f(store, db):\n'
                      '    store.db.execute("SELECT id FROM sessions")\n'
                      '    list(store.db["sessions"].rows_where("study = ?", ["x"]))\n'
                      '    db["turns"].insert_all([])\n'
                      '    sql = "DELETE FROM flags WHERE id = ?"\n'
                      '    return requests.query("not sql")\n')
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        lines = _problems(sample)
    finally:
        ROOT = saved
    kinds = " ".join(lines)
    assert ".execute(" in kinds and ".rows_where(" in kinds and "db[...].insert_all" in kinds
    assert "SQL text 'DELETE FROM flags" in kinds
    assert not any("requests" in line or ":6:" in line for line in lines), lines
