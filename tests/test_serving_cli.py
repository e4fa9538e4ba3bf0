"""Starting the service: settings from the environment, bind safety, tampered artifacts, `serve`."""
from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from lbp_benefit.cmd_serve import serve
from predict.artifact import ArtifactError, load_artifact, write_artifact
from predict.errors import LbpError
from serving.app import create_app
from serving.settings import ServingSettings, check_bind, is_loopback
from tests.test_serving_app import DoubleScorer, settings

ENV = ("LBP_MODEL_PATH", "LBP_API_KEYS", "LBP_ALLOW_UNAUTHENTICATED", "LBP_CORS_ORIGINS", "LBP_MAX_BODY_BYTES",
       "LBP_MAX_BATCH", "LBP_HOST", "LBP_PORT", "LBP_WARMUP", "LBP_DOCS", "LBP_METRICS_REQUIRE_AUTH", "MY_KEYS")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for k in ENV:
        monkeypatch.delenv(k, raising=False)


@pytest.fixture
def artifact(tmp_path):
    folder = tmp_path / "model"
    write_artifact(folder, {"model_id": "art-1", "created": "2024-01-01T00:00:00Z", "synthetic": True},
                   {"model.json": '{"coef": [0.1, 0.2]}', "card.md": "# card\n"})
    return folder


def artifact_loader(path):
    """A loader in the shape of predict.Scorer.load: verify the artifact, then build the scorer."""
    art = load_artifact(path)
    d = DoubleScorer()
    d.manifest = dict(art.manifest)
    return d


def test_settings_from_environment(monkeypatch):
    monkeypatch.setenv("LBP_API_KEYS", " key-alpha , key-beta,, ")
    monkeypatch.setenv("LBP_CORS_ORIGINS", "https://x.example, https://y.example")
    monkeypatch.setenv("LBP_MAX_BATCH", "50")
    monkeypatch.setenv("LBP_ALLOW_UNAUTHENTICATED", "true")
    s = ServingSettings()
    assert s.api_key_list == ["key-alpha", "key-beta"] and s.auth_enabled
    assert "key-alpha" not in repr(s)  # keys are secret in reprs
    assert s.cors_origin_list == ["https://x.example", "https://y.example"]
    assert s.max_batch == 50 and s.allow_unauthenticated
    monkeypatch.delenv("LBP_API_KEYS")
    d = ServingSettings()
    assert d.api_key_list == [] and d.max_body_bytes == 1024 * 1024 and d.host == "127.0.0.1"


@pytest.mark.parametrize("host, ok", [("127.0.0.1", True), ("localhost", True), ("::1", True), ("[::1]", True),
                                      ("127.0.0.2", True), ("0.0.0.0", False), ("::", False),
                                      ("10.1.2.3", False), ("example.org", False)])
def test_loopback(host, ok):
    assert is_loopback(host) is ok


def test_no_unauthenticated_bind_to_a_non_loopback_host():
    with pytest.raises(LbpError, match="LBP_API_KEYS"):
        check_bind("0.0.0.0", settings())
    check_bind("127.0.0.1", settings())
    check_bind("0.0.0.0", settings(api_keys="k"))
    check_bind("0.0.0.0", settings(allow_unauthenticated=True))


def test_tampered_artifact_stops_startup(artifact):
    app = create_app(settings=settings(model_path=artifact), loader=artifact_loader)
    assert app.state.model_id == "art-1"
    (artifact / "model.json").write_text('{"coef": [9.9, 0.2]}')
    with pytest.raises(ArtifactError, match="SHA-256"):
        create_app(settings=settings(model_path=artifact), loader=artifact_loader)


def test_default_loader_refuses_a_tampered_artifact(artifact):
    # predict.Scorer.load verifies the artifact (ArtifactError); until it exists, loading is refused (LbpError).
    (artifact / "model.json").write_text("{}")
    with pytest.raises(LbpError):
        create_app(settings=settings(model_path=artifact))


def serve_app() -> typer.Typer:
    app = typer.Typer()
    app.command()(serve)
    return app


@pytest.fixture
def patched(monkeypatch):
    """serve() with the test loader, no logging reconfiguration and no real server."""
    import serving.app
    import serving.logs

    calls = {}
    monkeypatch.setattr(serving.app, "default_loader", artifact_loader)
    monkeypatch.setattr(serving.logs, "configure_logging", lambda level: calls.setdefault("log_level", level))
    import uvicorn

    def fake_run(app, **kw):
        calls["app"], calls["kw"] = app, kw

    monkeypatch.setattr(uvicorn, "run", fake_run)
    return calls


def test_serve_check_only(artifact, patched):
    r = CliRunner().invoke(serve_app(), ["--model", str(artifact), "--check-only"])
    assert r.exit_code == 0, r.output
    assert "art-1" in r.output and "app" not in patched


def test_serve_runs_uvicorn_without_its_access_log(artifact, patched):
    r = CliRunner().invoke(serve_app(), ["--model", str(artifact), "--port", "8123", "--cors-origin", "https://a.example"])
    assert r.exit_code == 0, r.output
    kw = patched["kw"]
    assert kw["host"] == "127.0.0.1" and kw["port"] == 8123 and kw["access_log"] is False
    assert patched["app"].state.settings.cors_origin_list == ["https://a.example"]


def test_serve_refuses_public_bind_without_keys(artifact, patched, monkeypatch):
    r = CliRunner().invoke(serve_app(), ["--model", str(artifact), "--host", "0.0.0.0"])
    assert r.exit_code != 0 and isinstance(r.exception, LbpError) and "without authentication" in str(r.exception)
    monkeypatch.setenv("MY_KEYS", "secret-key")
    r = CliRunner().invoke(serve_app(), ["--model", str(artifact), "--host", "0.0.0.0", "--api-key-env", "MY_KEYS"])
    assert r.exit_code == 0, r.output
    assert patched["app"].state.settings.api_key_list == ["secret-key"]
    r = CliRunner().invoke(serve_app(), ["--model", str(artifact), "--host", "0.0.0.0", "--allow-unauthenticated"])
    assert r.exit_code == 0, r.output


def test_serve_fails_on_tampered_or_missing_model(artifact, patched, tmp_path, monkeypatch):
    (artifact / "card.md").write_text("# someone else's card\n")
    r = CliRunner().invoke(serve_app(), ["--model", str(artifact)])
    assert isinstance(r.exception, ArtifactError) and "app" not in patched
    # Without --model the embedded default model is used (trained on first use): the command asks
    # for it, and a failure to provide it stops the server.
    import lbp_benefit.default_model as dm

    asked = []

    def no_default(progress=None, log=None):
        asked.append(True)
        raise LbpError("no model: the default model could not be trained here")

    monkeypatch.setattr(dm, "ensure_default_model", no_default)
    r = CliRunner().invoke(serve_app(), [])
    assert asked and isinstance(r.exception, LbpError) and "no model" in str(r.exception) and "app" not in patched


def test_serving_never_imports_training():
    code = ("import sys, serving.app, serving.routes.score, lbp_benefit.cmd_serve; "
            "bad = [m for m in sys.modules if m == 'training' or m.startswith('training.')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
