"""SessionStore: sessions, turns, feedback, courses, full-text search and concurrent writers."""
from __future__ import annotations

import json
import sqlite3
import threading

import pytest

from store.db import Store
from store.ids import new_id, utc_now
from store.sessions import SessionNotFound, SessionStore, TurnRecord


@pytest.fixture
def db_file(tmp_path):
    return tmp_path / "data" / "sessions.db"


@pytest.fixture
def sessions(db_file):
    store = Store(db_file)
    yield SessionStore(store)
    store.close()


def raw(db_file, sql, args=()):
    """Read through a separate connection: only committed data is visible."""
    conn = sqlite3.connect(db_file)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def add_user(store: Store, username: str) -> str:
    uid = new_id()
    with store.write() as db:
        db["users"].insert({"id": uid, "username": username, "role": "patient", "created_utc": utc_now()})
    return uid


def test_create_and_get(sessions, db_file):
    row = sessions.create(modality="cbt", therapist_model="default-think", reasoning=True,
                          adapter="a.gguf", meta={"phase": "initial"})
    got = sessions.get(row["id"])
    assert got["modality"] == "cbt"
    assert got["therapist_model"] == "default-think"
    assert got["reasoning"] == 1 and got["simulated"] == 0
    assert got["status"] == "active"
    assert got["course_id"] == row["id"] and got["course_index"] == 1  # first of its own course
    assert got["adapter"] == "a.gguf"
    assert json.loads(got["meta_json"]) == {"phase": "initial"}
    assert got["created_utc"].endswith("Z") and got["ended_utc"] is None
    assert raw(db_file, "SELECT id, status FROM sessions") == [(row["id"], "active")]
    with pytest.raises(SessionNotFound):
        sessions.get("missing")


def test_list_newest_first_with_limit_and_user_filter(sessions):
    alice = add_user(sessions.store, "alice")
    bob = add_user(sessions.store, "bob")
    made = [sessions.create(modality="act", therapist_model="default", reasoning=False,
                            user_id=alice if i % 2 == 0 else bob)["id"] for i in range(5)]
    assert [s["id"] for s in sessions.list()] == made[::-1]
    assert [s["id"] for s in sessions.list(limit=2)] == made[::-1][:2]
    assert [s["id"] for s in sessions.list(user_id=alice)] == [made[4], made[2], made[0]]
    assert [s["id"] for s in sessions.list(user_id=bob)] == [made[3], made[1]]


def test_add_turn_indexes_in_order_and_commits(sessions, db_file):
    sid = sessions.create(modality="cbt", therapist_model="default", reasoning=False)["id"]
    roles = ["patient", "therapist", "patient", "therapist", "system"]
    returned = [sessions.add_turn(sid, TurnRecord(role, f"text {i}", latency_ms=10 * i,
                                                  meta={"i": i} if i == 1 else None))
                for i, role in enumerate(roles)]
    assert [t["idx"] for t in returned] == [0, 1, 2, 3, 4]
    # Durable and visible to another connection the moment add_turn returns.
    rows = raw(db_file, "SELECT id, idx, role, content, latency_ms FROM turns "
                        "WHERE session_id = ? ORDER BY idx", [sid])
    assert rows == [(t["id"], i, roles[i], f"text {i}", 10 * i) for i, t in enumerate(returned)]
    listed = sessions.turns(sid)
    assert [t["idx"] for t in listed] == [0, 1, 2, 3, 4]
    assert [t["content"] for t in listed] == [f"text {i}" for i in range(5)]
    assert json.loads(listed[1]["meta_json"]) == {"i": 1} and listed[0]["meta_json"] is None
    # Another session starts again at 0.
    other = sessions.create(modality="cbt", therapist_model="default", reasoning=False)["id"]
    assert sessions.add_turn(other, TurnRecord("patient", "hello"))["idx"] == 0


def test_add_turn_rejects_bad_role_and_missing_session(sessions):
    sid = sessions.create(modality="cbt", therapist_model="default", reasoning=False)["id"]
    with pytest.raises(ValueError, match="role"):
        sessions.add_turn(sid, TurnRecord("narrator", "x"))
    with pytest.raises(SessionNotFound):
        sessions.add_turn("missing", TurnRecord("patient", "x"))
    assert sessions.turns(sid) == []
    assert sessions.add_turn(sid, TurnRecord("patient", "ok"))["idx"] == 0  # store still usable


def test_turns_are_ordered_by_idx(sessions):
    sid = sessions.create(modality="cbt", therapist_model="default", reasoning=False)["id"]
    # Rows written out of order still come back by idx.
    with sessions.store.write() as db:
        for idx in (2, 0, 1):
            db["turns"].insert({"id": new_id(), "session_id": sid, "idx": idx, "role": "patient",
                                "content": f"c{idx}", "created_utc": utc_now()})
    assert [t["content"] for t in sessions.turns(sid)] == ["c0", "c1", "c2"]
    assert sessions.add_turn(sid, TurnRecord("therapist", "c3"))["idx"] == 3


def test_set_feedback(sessions, db_file):
    sid = sessions.create(modality="cbt", therapist_model="default", reasoning=False)["id"]
    tid = sessions.add_turn(sid, TurnRecord("therapist", "How does that feel?"))["id"]

    def stored():
        return raw(db_file, "SELECT feedback FROM turns WHERE id = ?", [tid])[0][0]

    assert stored() is None
    sessions.set_feedback(tid, 1)
    assert stored() == 1
    sessions.set_feedback(tid, -1)
    assert stored() == -1
    sessions.set_feedback(tid, None)
    assert stored() is None
    for bad in (2, 0, "up", -2):
        with pytest.raises(ValueError):
            sessions.set_feedback(tid, bad)
    assert stored() is None


def test_end_with_summary(sessions, db_file):
    sid = sessions.create(modality="cbt", therapist_model="default", reasoning=False)["id"]
    sessions.end(sid, summary="Worked on thought records; homework: log three situations.")
    row = sessions.get(sid)
    assert row["status"] == "ended"
    assert row["summary"] == "Worked on thought records; homework: log three situations."
    assert row["ended_utc"] and row["ended_utc"] >= row["created_utc"]
    assert raw(db_file, "SELECT status, summary IS NOT NULL FROM sessions WHERE id = ?", [sid]) == [("ended", 1)]
    sessions.set_summary(sid, "edited")
    assert sessions.get(sid)["summary"] == "edited"
    sessions.end(sid, status="stopped")
    assert sessions.get(sid)["status"] == "stopped"
    with pytest.raises(SessionNotFound):
        sessions.end("missing", summary="x")


def test_course(sessions):
    first = sessions.create(modality="cbt", therapist_model="default", reasoning=False)
    course_id = first["course_id"]
    third = sessions.create(modality="cbt", therapist_model="default", reasoning=False,
                            course_id=course_id, course_index=3)
    second = sessions.create(modality="cbt", therapist_model="default", reasoning=False,
                             course_id=course_id, course_index=2)
    unrelated = sessions.create(modality="cbt", therapist_model="default", reasoning=False)
    course = sessions.course(course_id)
    assert [s["id"] for s in course] == [first["id"], second["id"], third["id"]]
    assert [s["course_index"] for s in course] == [1, 2, 3]
    assert [s["id"] for s in sessions.course(unrelated["id"])] == [unrelated["id"]]
    assert sessions.course("none") == []


def test_full_text_search_content_and_reasoning(sessions):
    sid = sessions.create(modality="cbt", therapist_model="default-think", reasoning=True)["id"]
    p = sessions.add_turn(sid, TurnRecord("patient", "I feel hopeless about my job interview"))
    t = sessions.add_turn(sid, TurnRecord("therapist", "What goes through your mind then?",
                                          reasoning="Possible catastrophizing; use Socratic questioning."))
    sessions.add_turn(sid, TurnRecord("patient", "I don't have any self-worth"))

    assert [r["id"] for r in sessions.search("hopeless")] == [p["id"]]
    assert [r["id"] for r in sessions.search("catastrophizing")] == [t["id"]]  # reasoning only
    assert [r["id"] for r in sessions.search("interviews")] == [p["id"]]  # porter stemming
    hit = sessions.search("Socratic")[0]
    assert hit["session_id"] == sid and hit["idx"] == 1 and hit["role"] == "therapist"
    assert sessions.search("zebra") == []
    assert len(sessions.search("hopeless job")) == 1
    # Text typed in a search box must never raise an FTS5 syntax error.
    assert len(sessions.search("don't")) == 1
    assert len(sessions.search("self-worth")) == 1
    for odd in ('"', "AND", "NEAR(", "", "   ", "*"):
        assert sessions.search(odd) == []
    # The index follows edits and deletions (FTS triggers).
    with sessions.store.write() as db:
        db["turns"].update(p["id"], {"content": "I feel better today"})
    assert sessions.search("hopeless") == []
    assert [r["id"] for r in sessions.search("better")] == [p["id"]]


def test_concurrent_add_turn_from_8_threads(sessions, db_file):
    sid = sessions.create(modality="act", therapist_model="default", reasoning=False)["id"]
    n_threads, per_thread = 8, 20
    errors: list[str] = []
    acked: dict[int, list[tuple[str, int]]] = {n: [] for n in range(n_threads)}
    start = threading.Barrier(n_threads)

    def writer(n: int):
        try:
            start.wait()
            for i in range(per_thread):
                row = sessions.add_turn(sid, TurnRecord("patient", f"thread {n} turn {i}"))
                acked[n].append((row["id"], row["idx"]))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(repr(exc))
        finally:
            sessions.store.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    rows = raw(db_file, "SELECT id, idx, content FROM turns WHERE session_id = ? ORDER BY idx", [sid])
    assert len(rows) == n_threads * per_thread == 160
    assert [r[1] for r in rows] == list(range(160))
    by_id = {r[0]: (r[1], r[2]) for r in rows}
    for n, acks in acked.items():
        assert len(acks) == per_thread
        # Every acknowledged id is stored with the idx it was given, in the thread's own order.
        assert [by_id[tid][0] for tid, _ in acks] == [idx for _, idx in acks]
        assert [by_id[tid][1] for tid, _ in acks] == [f"thread {n} turn {i}" for i in range(per_thread)]
        assert [idx for _, idx in acks] == sorted(idx for _, idx in acks)
