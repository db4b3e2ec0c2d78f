"""TheraLab entry point: parse args -> Settings -> Store -> services -> UI -> launch on loopback."""
from __future__ import annotations

import sys

from config import ConfigError, enforce_offline_env, load_settings
from vocabulary import EventKind

enforce_offline_env()


def is_loopback(host: str) -> bool:
    import ipaddress
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    try:
        settings = load_settings(sys.argv[1:] if argv is None else argv)
    except ConfigError as exc:
        print(f"TheraLab cannot start: {exc}", file=sys.stderr)
        return 2
    from models.catalog import CatalogError
    from services import build_services, preload_default
    from store.db import StoreError
    try:
        services = build_services(settings)
    except (StoreError, CatalogError, ConfigError) as exc:
        print(f"TheraLab cannot start: {exc}", file=sys.stderr)
        return 2
    if not services.sign_in and not is_loopback(settings.host):
        print(f"TheraLab refuses to bind {settings.host} without accounts: session text is health data. "
              "Create accounts first (python -m store users add NAME --role admin) or bind 127.0.0.1.",
              file=sys.stderr)
        return 2
    if settings.preload_default:
        preload_default(services)
    from ui.access import Access
    from ui.app import build_app
    from ui.guard import OriginPolicy
    try:
        policy = OriginPolicy.for_bind(settings.host, settings.port, settings.public_url)
    except ValueError as exc:
        print(f"TheraLab cannot start: {exc}", file=sys.stderr)
        return 2
    if not is_loopback(settings.host) and not settings.public_url:
        print(f"TheraLab: bound to {settings.host} with no public_url set: only requests addressed to "
              "that address or to loopback are answered. Set public_url to the address people "
              "use (docs/security.md).", file=sys.stderr)
    access = Access(services)
    app = build_app(services, access)
    services.audit.record("system", EventKind.APP_START, None, host=settings.host, port=settings.port)
    print(f"TheraLab on http://{settings.host}:{settings.port}  (data: {settings.data_dir})", flush=True)
    try:
        launch(app, settings, services, access, policy)
    except OSError as exc:
        print(f"TheraLab cannot start: {exc}", file=sys.stderr)
        return 2
    return 0


def launch(app, settings, services, access, policy) -> None:
    """Serve on the bound address behind the same-origin guard (docs/security.md): never
    share=True, no uploads, no monitoring or schema routes, generic errors with a reference."""
    import os

    from ui.errors import install_error_guard
    from ui.guard import guard_lifespan, hide_api_description
    from ui.location import PAGE_JS
    install_error_guard(app, services.audit)
    # uvicorn believes X-Forwarded-For from loopback by default, so any local process could pick
    # the address the sign-in throttle and audit see. Only a configured reverse proxy may set it.
    if not settings.public_url:
        os.environ["FORWARDED_ALLOW_IPS"] = ""
    else:
        os.environ.setdefault("FORWARDED_ALLOW_IPS", "127.0.0.1")
    app.queue(default_concurrency_limit=8, api_open=False).launch(
        server_name=settings.host, server_port=settings.port, share=False,
        auth=access.login if services.sign_in else None,
        auth_message="TheraLab: sign in with the account your study team gave you.",
        show_error=False, footer_links=[], enable_monitoring=False, max_file_size=1, run_history=False,
        js=PAGE_JS,  # Back/Forward select the tab the URL names (ui/location.py)
        app_kwargs={"openapi_url": None, "docs_url": None, "redoc_url": None,
                    "lifespan": guard_lifespan(policy, services.audit, access.throttle, hide_api_description)})


if __name__ == "__main__":
    sys.exit(main())
