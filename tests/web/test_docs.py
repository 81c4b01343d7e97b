"""The README documents every route, every webhook service and every secret `campaign serve` reads."""

from __future__ import annotations

from starlette.routing import Route

from campaign.config import WebSettings
from campaign.web.app import create_app
from campaign.web.webhooks import NORMALISERS, SECRETS
from tests.conftest import REPO
from tests.web.conftest import make_config

DOC = (REPO / "README.md").read_text()


def test_every_secret_service_and_setting_is_documented() -> None:
    assert set(SECRETS) == set(NORMALISERS)
    for service, variables in SECRETS.items():
        assert f"/webhooks/{service}" in DOC
        for variable in variables:
            assert f"`{variable}" in DOC, variable
    for setting in WebSettings.model_fields:
        assert setting in DOC, setting


def test_every_route_is_documented(workspace, db_url) -> None:  # type: ignore[no-untyped-def]
    app = create_app(make_config(workspace, db_url))
    for route in app.routes:
        assert isinstance(route, Route)
        documented = route.path.replace("{token:str}", "<token>").replace("{slug:str}", "<slug>")
        documented = (
            documented.replace("{service:str}", "<service>")
            .replace("{name:str}", "<name>")
            .replace("{list:str}", "<list>")
        )
        assert f"`{documented}`" in DOC or f" {documented}`" in DOC, route.path
