"""The MONAI Label app through MONAI Label itself: FastAPI's TestClient against `monailabel.app` (score, next sample,
save a label, train, next sample, infer), and the real server started by the generated start_server.sh, called over
loopback HTTP. Skipped where the extra is absent (`pip install "assft[monailabel]"`), failed instead where
ASSFT_REQUIRE_MONAILABEL=1: CI installs it into its own virtual environment and sets that (.ci/run)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from extras import absent  # noqa: E402

try:
    import monailabel  # noqa: F401
except ImportError:
    absent("monailabel", "the MONAI Label extra is not installed (pip install 'assft[monailabel]')")

from test_monailabel_app import make_app, world  # noqa: E402,F401  (the shared fixture and app builder)

from assft.integrations.monailabel.state import model_version  # noqa: E402


@pytest.fixture()
def client(world: dict, tmp_path: Path):  # noqa: F811
    """A TestClient on MONAI Label's FastAPI app serving a freshly generated assft app."""
    from fastapi.testclient import TestClient
    from monailabel.config import settings
    from monailabel.interfaces.utils.app import clear_cache

    state, _ = make_app(world, tmp_path)
    saved = {k: getattr(settings, k) for k in ("MONAI_LABEL_APP_DIR", "MONAI_LABEL_STUDIES",
                                               "MONAI_LABEL_DATASTORE_AUTO_RELOAD")}
    settings.MONAI_LABEL_APP_DIR, settings.MONAI_LABEL_STUDIES = str(state.app_dir), str(state.studies)
    settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD = False  # no watchdog thread in a test
    from monailabel.app import app

    try:
        with TestClient(app) as test_client:
            yield test_client, state
    finally:
        clear_cache()
        for key, value in saved.items():
            setattr(settings, key, value)


def test_score_next_label_train_next_through_the_api(client, world: dict) -> None:  # noqa: F811
    client, state = client
    info = client.get("/info/").json()
    assert list(info["strategies"]) == ["assft", "fg-random", "clasp-pe"]
    assert info["config"]["activelearning"] == {"alpha": 0.5} and "assft" in info["models"]
    scored = client.post("/scoring/assft?run_sync=true").json()
    assert scored["scored"] == 8 and scored["model"] == "model/start.pt"

    first = client.post("/activelearning/assft", json={"client_id": "annotator-1"}).json()
    second = client.post("/activelearning/assft", json={"client_id": "annotator-2"}).json()
    assert first["id"] != second["id"]  # the first one was served: not served again, and it counts for Div
    assert first["id"] in second["reference"]
    assert {"Q", "DKD", "KD", "Div", "ASD"} <= set(first["scores"]) and first["rationale"]
    stored = client.get(f"/datastore/image/info?image={first['id']}").json()["assft"]
    assert stored["model_version"] == model_version(state.start_model)

    label = world["spec"].get(first["id"]).label_path
    with open(label, "rb") as fh:
        saved = client.put(f"/datastore/label?image={first['id']}", files={"label": (label.name, fh)})
    assert saved.status_code == 200, saved.text
    trained = client.post("/train/assft?run_sync=true").json()
    assert trained["round"] == 1 and trained["labeled"] == 1 and trained["scoring"]["scored"] == 8
    assert (state.campaign_dir / trained["checkpoint"]).exists()

    after = client.post("/activelearning/assft", json={"client_id": "annotator-1"}).json()
    assert after["id"] not in (first["id"], second["id"])  # labeled / recently served
    assert after["model_version"] == model_version(state.current_model()) != model_version(state.start_model)
    assert first["id"] in after["reference"]
    inferred = client.post(f"/infer/assft?image={after['id']}")
    assert inferred.status_code == 200 and inferred.content


def test_alpha_from_the_request_is_checked(client) -> None:
    from monailabel.interfaces.exception import MONAILabelException

    client, _ = client
    with pytest.raises(MONAILabelException, match=r"alpha must be a number in \[0, 1\], got 7"):
        client.post("/activelearning/assft", json={"alpha": 7})
    assert client.post("/activelearning/fg-random", json={"alpha": 0.2}).json()["strategy"] == "fg-random"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _call(url: str, data: dict | None = None, timeout: float = 60) -> dict:
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, method="GET" if data is None else "POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_generated_start_script_serves_on_loopback(world: dict, tmp_path: Path) -> None:  # noqa: F811
    state, _ = make_app(world, tmp_path)
    port = _free_port()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "MONAI_LABEL_DATASTORE_AUTO_RELOAD": "false"}
    env.pop("ASSFT_MONAILABEL_HOST", None)
    assert shutil.which("monailabel", path=env["PATH"]), "the extra installs the monailabel console script"
    server = subprocess.Popen(["bash", str(state.app_dir / "start_server.sh"), str(state.studies), str(port)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 150
        while True:
            try:
                info = _call(f"http://127.0.0.1:{port}/info/", timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"server did not start:\n{server.stdout.read().decode()[-3000:]}") from None
                time.sleep(1)
        assert info["name"] == "assft"
        listening = subprocess.run(["ss", "-ltn"], capture_output=True, text=True).stdout if shutil.which("ss") else ""
        if listening:  # bound to loopback only, as the script promises
            assert f"127.0.0.1:{port}" in listening and f"0.0.0.0:{port}" not in listening
        picked = _call(f"http://127.0.0.1:{port}/activelearning/assft", {"client_id": "smoke"}, timeout=120)
        assert picked["id"] in [c.case_id for c in world["spec"].cases] and "Q" in picked["scores"]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
