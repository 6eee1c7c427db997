"""Logins, tokens, roles and scopes; users managed by admins within their scope."""

from __future__ import annotations

import time

import jwt

from tests.api_fixtures import PASSWORD, Api


def test_login_tokens_and_revocation(sqlite_api: Api) -> None:
    api, client = sqlite_api, sqlite_api.client
    assert client.get("/cases").status_code == 401
    assert "log in" in client.get("/cases").json()["detail"]
    wrong = client.post("/auth/token", data={"username": "operator", "password": "nope-nope"})
    assert wrong.status_code == 401 and wrong.json()["detail"] == "wrong username or password"
    unknown = client.post("/auth/token", data={"username": "ghost", "password": "whatever1"})
    assert unknown.status_code == 401 and unknown.json() == wrong.json()

    login = client.post("/auth/token", data={"username": "operator", "password": PASSWORD})
    body = login.json()
    assert body["token_type"] == "bearer" and body["user"]["role"] == "operator"
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["name"] == "operator" and claims["exp"] > time.time()
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    me = client.get("/auth/me", headers=headers).json()
    assert me["centre"]["code"] == "demo.riverside" and "cases.dispatch" not in me["permissions"]

    forged = jwt.encode({**claims, "sub": "1"}, "not-the-key-" * 4, algorithm="HS256")
    bad = client.get("/cases", headers={"Authorization": f"Bearer {forged}"})
    assert bad.status_code == 401 and "invalid token" in bad.json()["detail"]
    expired = jwt.encode(
        {**claims, "exp": int(time.time()) - 5}, api.config.auth.secret_key, algorithm="HS256"
    )
    assert (
        "expired"
        in client.get("/cases", headers={"Authorization": f"Bearer {expired}"}).json()["detail"]
    )

    # A password change revokes the tokens issued before it.
    user_id = me["id"]
    changed = api.patch("admin", f"/users/{user_id}", json={"password": "new-password-1"})
    assert changed.status_code == 200
    revoked = client.get("/cases", headers=headers)
    assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]
    relogin = client.post(
        "/auth/token", data={"username": "operator", "password": "new-password-1"}
    )
    assert relogin.status_code == 200
    # Deactivated users cannot log in.
    api.patch("admin", f"/users/{user_id}", json={"active": False})
    assert (
        client.post(
            "/auth/token", data={"username": "operator", "password": "new-password-1"}
        ).status_code
        == 401
    )

    # Password guessing: five failures lock the name out for a while (others unaffected).
    guess = {"username": "dispatcher", "password": "guess-123"}
    for _ in range(5):
        assert client.post("/auth/token", data=guess).status_code == 401
    locked = client.post("/auth/token", data={"username": "dispatcher", "password": PASSWORD})
    assert locked.status_code == 429 and "too many failed logins" in locked.json()["detail"]
    assert int(locked.headers["retry-after"]) > 0
    other = client.post("/auth/token", data={"username": "harbour", "password": PASSWORD})
    assert other.status_code == 200


def test_roles_and_user_management_scope(sqlite_api: Api) -> None:
    api = sqlite_api
    # An integrator manages cameras but does not read cases.
    refused = api.get("integrator", "/cases")
    assert refused.status_code == 403 and "integrator" in refused.json()["detail"]
    assert api.get("integrator", "/cameras").status_code == 200
    assert api.get("operator", "/users").status_code == 403

    riverside, hillside = api.centre("demo.riverside"), api.centre("demo.hillside")
    created = api.post(
        "admin",
        "/users",
        json={
            "username": "rv-admin",
            "password": "rv-admin-pass",
            "role": "admin",
            "centre_id": riverside,
        },
    )
    assert created.status_code == 201, created.text
    api.tokens.pop("rv-admin", None)
    token = api.client.post(
        "/auth/token", data={"username": "rv-admin", "password": "rv-admin-pass"}
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    names = {u["username"] for u in api.client.get("/users", headers=headers).json()}
    assert names == {"operator", "dispatcher", "harbour", "rv-admin"}
    outside = api.client.post(
        "/users",
        headers=headers,
        json={
            "username": "x1",
            "password": "password-1",
            "role": "operator",
            "centre_id": hillside,
        },
    )
    assert outside.status_code == 422 and "does not exist" in outside.json()["detail"]
    hillside_user = next(
        u for u in api.get("admin", "/users").json() if u["username"] == "hillside"
    )
    assert api.client.get(f"/users/{hillside_user['id']}", headers=headers).status_code == 404
    global_op = api.post(
        "admin", "/users", json={"username": "g", "password": "password-1", "role": "operator"}
    )
    assert global_op.status_code == 422 and "needs a centre" in global_op.json()["detail"]
    duplicate = api.post(
        "admin",
        "/users",
        json={
            "username": "operator",
            "password": "password-1",
            "role": "operator",
            "centre_id": riverside,
        },
    )
    assert duplicate.status_code == 409
    # Centres: a street admin sees its subtree only.
    codes = {c["code"] for c in api.client.get("/centres", headers=headers).json()}
    assert codes == {"demo.riverside", "demo.riverside.harbour", "demo.riverside.market"}
    assert api.client.get(f"/centres/{hillside}", headers=headers).status_code == 404


def test_organisation_from_config_and_admin_endpoints(tmp_path, redis_server) -> None:  # type: ignore[no-untyped-def]
    from api.settings import CentreSpec, OrganisationSpec, UnitSpec
    from camera_adapters.spec import CameraSpec
    from tests.api_fixtures import make_config, running_api

    organisation = OrganisationSpec(
        district=CentreSpec(
            name="Haizhu District",
            code="hz",
            children=[
                CentreSpec(
                    name="Binjiang Street",
                    code="hz.bj",
                    units=[UnitSpec(name="Binjiang police station", kind="police")],
                    children=[CentreSpec(name="Riverside", code="hz.bj.rs", grid_cells=["BJ-07"])],
                )
            ],
        )
    )
    camera = CameraSpec(
        id="metro-b",
        name="Metro exit B",
        source="rtsp://192.0.2.11/x",
        location={
            "district": "Haizhu District",
            "street": "Binjiang Street",
            "community": "Station",
            "grid_cell": "BJ-02",
        },
    )
    config = make_config(
        f"sqlite:///{tmp_path / 'org.db'}",
        redis_server.url,
        organisation=organisation,
        cameras=[camera],
    )
    with running_api(config) as api:
        centres = {c["code"]: c for c in api.get("admin", "/centres").json()}
        assert centres["hz.bj.rs"]["grid_cells"] == ["BJ-07"]
        assert centres["hz.bj.rs"]["path"] == "Haizhu District / Binjiang Street / Riverside"
        # The config camera's unknown community is created under the declared street.
        station = next(c for c in centres.values() if c["name"] == "Station")
        assert station["tier"] == "community" and station["parent_id"] == centres["hz.bj"]["id"]
        assert station["grid_cells"] == ["BJ-02"]
        assert api.get("admin", "/cameras/metro-b").json()["centre_id"] == station["id"]

        added = api.post(
            "admin",
            "/centres",
            json={"name": "Pier", "parent_id": centres["hz.bj"]["id"], "grid_cells": ["BJ-09"]},
        )
        assert added.status_code == 201 and added.json()["tier"] == "community"
        below = api.post(
            "admin", "/centres", json={"name": "Too deep", "parent_id": added.json()["id"]}
        )
        assert below.status_code == 422 and "lowest tier" in below.json()["detail"]
        taken = api.post(
            "admin",
            "/centres",
            json={"name": "Again", "parent_id": centres["hz.bj"]["id"], "grid_cells": ["BJ-09"]},
        )
        assert taken.status_code == 409
        unit = api.post(
            "admin",
            "/units",
            json={"name": "Pier patrol", "kind": "joint_patrol", "centre_id": added.json()["id"]},
        )
        assert unit.status_code == 201
        off = api.patch("admin", f"/units/{unit.json()['id']}", json={"active": False})
        assert off.status_code == 200 and off.json()["active"] is False
        imported = api.post("admin", "/organisation/import", json=organisation.model_dump())
        assert imported.status_code == 200 and imported.json()["centres_created"] == 0
        assert (
            api.post("operator", "/organisation/import", json=organisation.model_dump()).status_code
            == 403
        )
