"""Where the user is, kept in the page's URL: ``?tab=<tab>&session=<id>``.

A reload, the Back button and a link a supervisor shares all land where the user was:
- choosing a tab pushes ``?tab=`` onto the browser history, and Back/Forward select the tab the
  URL names again (``PAGE_JS``, run once when the page loads);
- opening a session writes ``?session=`` in place (``SESSION_URL_JS``), without a history entry;
- on load, ``tab_from`` tells the app which tab to select, and each tab reads ``session_from``
  itself and opens that session only if the caller may (the handlers check, as for any call).

The URL holds ids only, never session text: it ends up in the browser history.
"""
from __future__ import annotations

import json
import re

# (tab id, label): the ids are what ``?tab=`` holds; the labels are what the page shows.
TABS = (("session", "Session"), ("watch", "Watch"), ("review", "Review"), ("supervise", "Supervise"),
        ("admin", "Admin"))
TAB_IDS = tuple(tab_id for tab_id, _ in TABS)
_ID = re.compile(r"[0-9A-Za-z]{1,64}")

# Back/Forward: select the tab the URL names by clicking its button (labels are unique).
PAGE_JS = """
() => {
  const labels = %s;
  window.addEventListener("popstate", () => {
    const wanted = labels[new URL(window.location.href).searchParams.get("tab") || "session"];
    for (const button of document.querySelectorAll("button[role='tab']")) {
      if (button.innerText.trim() === wanted && button.getAttribute("aria-selected") !== "true") {
        button.click();
      }
    }
  });
}
""" % json.dumps(dict(TABS))


def tab_select_js(tab_id: str) -> str:
    """JS run when a tab is chosen: a new history entry, unless the URL names that tab already
    (so selecting a tab because of Back does not push it again)."""
    return """
() => {
  const url = new URL(window.location.href);
  if ((url.searchParams.get("tab") || "session") !== %s) {
    url.searchParams.set("tab", %s);
    window.history.pushState(null, "", url);
  }
}
""" % (json.dumps(tab_id), json.dumps(tab_id))


# JS run when a tab opens or closes a session: the URL names it, in place.
SESSION_URL_JS = """
(sid) => {
  const url = new URL(window.location.href);
  if (sid) { url.searchParams.set("session", sid); } else { url.searchParams.delete("session"); }
  window.history.replaceState(window.history.state, "", url);
}
"""


def _params(request) -> dict:
    try:
        return dict(request.query_params) if request is not None else {}
    except (AttributeError, TypeError):
        return {}


def tab_from(request) -> str | None:
    """The tab id the page's URL names, if it is one of ours."""
    tab = _params(request).get("tab")
    return tab if tab in TAB_IDS else None


def session_from(request, tab: str) -> str | None:
    """The session id the URL names for ``tab`` (a link without ``tab=`` is the Session tab's);
    anything that does not look like an id is ignored."""
    params = _params(request)
    if (params.get("tab") or "session") != tab:
        return None
    sid = params.get("session") or ""
    return sid if _ID.fullmatch(sid) else None
