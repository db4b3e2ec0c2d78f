"""The same-origin guard (ui/guard.py) and the error guard (ui/errors.py), on small apps in process:
which requests pass, what is stripped and rewritten on the way out, what is audited."""
from __future__ import annotations

import asyncio

import gradio as gr
import pytest
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from ui.guard import CLIENT_ADDRESS, Guard, OriginPolicy, _RefusalLog
from ui.errors import install_error_guard


class FakeAudit:
    def __init__(self):
        self.rows = []

    def record(self, actor, action, target=None, **detail):
        self.rows.append((actor, action, target, detail))


def _inner_app():
    async def config(request):
        response = JSONResponse({"address": CLIENT_ADDRESS.get()})
        # what Gradio's CORS layer and login route would add
        response.headers["access-control-allow-origin"] = request.headers.get("origin", "*")
        response.headers["access-control-allow-credentials"] = "true"
        response.set_cookie("access-token-x", "tok", httponly=True, samesite="none", secure=True)
        return response

    async def refuse(request):
        return JSONResponse({"detail": "no"}, status_code=401)
    return Starlette(routes=[Route("/config", config), Route("/login", config, methods=["POST"]),
                             Route("/private", refuse), Route("/gradio_api/upload", config, methods=["POST"])])


@pytest.fixture
def guarded():
    audit = FakeAudit()
    policy = OriginPolicy.for_bind("127.0.0.1", 7860, "https://theralab.example.org")
    client = TestClient(Guard(_inner_app(), policy, audit, tokens={"tok": "sup1"}), base_url="http://127.0.0.1:7860")
    return client, audit


def test_policy_knows_the_bound_address_its_loopback_aliases_and_public_urls():
    policy = OriginPolicy.for_bind("127.0.0.1", 7860, "https://theralab.example.org")
    assert policy.host_ok("127.0.0.1:7860") and policy.host_ok("localhost:7860") and policy.host_ok("[::1]:7860")
    assert policy.host_ok("theralab.example.org") and policy.host_ok("THERALAB.example.org:443")
    assert not policy.host_ok("127.0.0.1:9999") and not policy.host_ok("evil.example:7860") and not policy.host_ok("")
    assert policy.origin_ok("http://localhost:7860") and policy.origin_ok("https://theralab.example.org")
    assert not policy.origin_ok("http://127.0.0.1:9999") and not policy.origin_ok("null")
    assert not policy.origin_ok("http://theralab.example.org")  # the proxy's origin is https only
    with pytest.raises(ValueError):
        OriginPolicy.for_bind("127.0.0.1", 7860, "theralab.example.org/no-scheme")


def test_own_origin_passes_with_cors_headers_stripped_and_cookie_strict(guarded):
    client, audit = guarded
    answer = client.get("/config", headers={"Origin": "http://127.0.0.1:7860"})
    assert answer.status_code == 200 and answer.json()["address"] == "testclient"
    assert not [k for k in answer.headers if k.lower().startswith("access-control-")]
    assert "samesite=strict" in answer.headers["set-cookie"].lower()
    assert "samesite=none" not in answer.headers["set-cookie"].lower()
    assert answer.headers["x-frame-options"] == "DENY" and answer.headers["x-content-type-options"] == "nosniff"
    assert audit.rows == []


@pytest.mark.parametrize("headers, reason", [
    ({"Origin": "http://127.0.0.1:9999"}, "cross-origin request"),
    ({"Origin": "null"}, "cross-origin request"),
    ({"Host": "rebound.example:7860"}, "host not allowed"),
    ({"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "no-cors"}, "cross-site request"),
    ({"Referer": "http://localhost:3000/app"}, "cross-origin referer"),
])
def test_foreign_requests_are_refused_and_audited_under_the_cookie_owner(guarded, headers, reason):
    client, audit = guarded
    answer = client.get("/config", headers=headers, cookies={"access-token-x": "tok"})
    assert answer.status_code == 403 and reason in answer.json()["detail"]
    assert "access-control-allow-origin" not in answer.headers
    (actor, action, _, detail), = audit.rows
    assert (actor, action, detail["reason"]) == ("sup1", "http.refused", reason)


def test_unused_routes_are_refused_and_app_refusals_are_audited(guarded):
    client, audit = guarded
    assert client.post("/gradio_api/upload", content=b"x").status_code == 403
    assert client.get("/private").status_code == 401
    assert [d["reason"] for _, _, _, d in audit.rows] == ["route not available", "answered 401"]


def test_a_top_level_link_to_the_start_page_is_allowed_but_not_to_an_api_route():
    policy = OriginPolicy.for_bind("127.0.0.1", 7860)
    inner = Starlette(routes=[Route("/", lambda r: JSONResponse({})), Route("/config", lambda r: JSONResponse({}))])
    client = TestClient(Guard(inner, policy), base_url="http://127.0.0.1:7860")
    link = {"Referer": "https://wiki.example/", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    assert client.get("/", headers=link).status_code == 200
    assert client.get("/config", headers=link).status_code == 403
    assert client.get("/logout", headers={**link, "Sec-Fetch-Site": "same-site"}).status_code == 403


def test_sign_in_is_throttled_per_address_before_the_app_sees_it():
    class Locked:
        def check(self, username, address):
            return 42.0 if address == "testclient" else 0.0
    client = TestClient(Guard(_inner_app(), OriginPolicy.for_bind("127.0.0.1", 7860), FakeAudit(), Locked()),
                        base_url="http://127.0.0.1:7860")
    answer = client.post("/login", data={"username": "a", "password": "b"})
    assert answer.status_code == 429 and answer.headers["retry-after"] == "43"


def test_refusal_audit_is_rate_limited_and_counts_what_it_left_out():
    now = [0.0]
    audit = FakeAudit()
    log = _RefusalLog(audit, per_minute=3, clock=lambda: now[0])
    for _ in range(10):
        log.record(reason="x")
    assert len(audit.rows) == 3
    now[0] = 61.0
    log.record(reason="x")
    assert len(audit.rows) == 4 and audit.rows[-1][3]["not_audited_before_this"] == 7


def _blocks_with(failure: BaseException):
    with gr.Blocks() as blocks:
        box, flag = gr.Textbox(label="Your message"), gr.Checkbox(label="Agree")
        epochs = gr.Number(value=1.0, minimum=0.1, maximum=50, label="Epochs")
        pick = gr.Dropdown(["a", "b"], value="a", label="Pick", allow_custom_value=True)
        many = gr.Dropdown(["a", "b"], value=["a"], multiselect=True, label="Many")
        out = gr.Textbox()
        gr.Button().click(lambda *a: a[0], [box, flag, epochs, pick, many], out, api_name="echo")

    async def original(block_fn, inputs, *args, **kwargs):
        raise failure
    blocks.process_api = original
    audit = FakeAudit()
    install_error_guard(blocks, audit)
    return blocks, audit


def test_unexpected_errors_reach_the_client_only_as_a_reference():
    blocks, audit = _blocks_with(TypeError("'<=' not supported between instances of 'int' and 'str'"))
    with pytest.raises(gr.Error) as raised:
        asyncio.run(blocks.process_api(blocks.fns[0], ["hello", True, 1.0, "a", ["a"]]))
    message = raised.value.message
    assert "not supported" not in message and "reference" in message
    (actor, action, _, detail), = audit.rows
    assert action == "app.error" and detail["reference"] in message and "not supported" in detail["error"]


def test_app_messages_pass_and_wrong_types_are_refused_before_the_handler():
    blocks, audit = _blocks_with(gr.Error("Your role (patient) may not do this."))
    good = ["hello", True, 1.0, "a", ["a"]]
    with pytest.raises(gr.Error, match="may not do this"):
        asyncio.run(blocks.process_api(blocks.fns[0], good))
    bad = [(0, 12345), (0, {"role": "x"}), (1, "notabool"), (1, 1), (2, float("nan")), (2, "3"),
           (3, ["a", "b"]), (3, {"x": 1}), (4, "a")]
    for at, value in bad:
        inputs = list(good)
        inputs[at] = value
        with pytest.raises(gr.Error, match="not valid"):
            asyncio.run(blocks.process_api(blocks.fns[0], inputs))
    assert [row[1] for row in audit.rows] == ["access.invalid_input"] * len(bad)
