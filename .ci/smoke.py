"""What the README's `make run` does, on a machine that never ran `make test`: a fresh venv with `pip install .` and
no extras, its own database, data folder and ports; `gridline init --demo --demo-staff`; `gridline serve`; then the
pages a new user opens, one report through the web chat to a receipt number, a 受理员's console login, and a clean
stop on SIGTERM.

The test extra installs more than the server needs, so only this stage sees a module that the running program
imports but `[project.dependencies]` lacks. Standard library only: it runs on the system Python.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START_LIMIT_S = 120
STOP_LIMIT_S = 30
REPORT = "人民路88号门口一大堆垃圾没人清"
RECEIPT = re.compile(r"编号 ([0-9A-Za-z-]+)")


class SmokeFailure(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def step(message: str) -> None:
    print(f"smoke: {message}", flush=True)


def run(cmd: list[str], *, env: dict[str, str], cwd: Path, timeout: float) -> str:
    done = subprocess.run(cmd, env=env, cwd=cwd, timeout=timeout, capture_output=True, text=True)
    if done.returncode != 0:
        raise SmokeFailure(f"{' '.join(cmd[-3:])} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    return done.stdout


class Client:
    """A browser's worth of HTTP: one cookie jar across requests."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str, timeout: float = 10) -> tuple[int, str, bytes]:
        return self._open(urllib.request.Request(self.base + path), timeout)

    def post_form(self, path: str, fields: dict[str, str]) -> tuple[int, str, bytes]:
        data = urllib.parse.urlencode(fields).encode()
        return self._open(urllib.request.Request(self.base + path, data=data, method="POST"), 30)

    def post_json(self, path: str, body: dict, headers: dict[str, str]) -> tuple[int, str, bytes]:
        data = json.dumps(body, ensure_ascii=False).encode()
        req = urllib.request.Request(
            self.base + path, data=data, headers={"Content-Type": "application/json", **headers}, method="POST"
        )
        return self._open(req, 30)

    def _open(self, req: urllib.request.Request, timeout: float) -> tuple[int, str, bytes]:
        try:
            with self.opener.open(req, timeout=timeout) as resp:
                return resp.status, resp.headers.get("Content-Type", ""), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def wait_for_health(client: Client, server: subprocess.Popen) -> dict:
    deadline = time.monotonic() + START_LIMIT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SmokeFailure(f"gridline serve exited {server.returncode} before answering /healthz")
        try:
            status, ctype, body = client.get("/healthz", timeout=2)
        except OSError:
            time.sleep(0.5)
            continue
        if status != 200 or not ctype.startswith("application/json"):
            raise SmokeFailure(f"/healthz answered {status} {ctype}: {body[:300]!r}")
        return json.loads(body)
    raise SmokeFailure(f"/healthz did not answer within {START_LIMIT_S} s")


def report_through_web_chat(client: Client) -> str:
    """The chat page's own calls: open the page (cookie), say what and where, skip the photo, confirm."""
    status, _, _ = client.get("/chat")
    if status != 200:
        raise SmokeFailure(f"/chat answered {status}")
    text = REPORT
    for _ in range(6):
        status, _, body = client.post_json(
            "/chat/api/messages", {"id": uuid.uuid4().hex, "text": text}, {"X-Gridline-Chat": "1"}
        )
        if status != 200:
            raise SmokeFailure(f"/chat/api/messages answered {status}: {body[:300]!r}")
        replies = json.loads(body)["replies"]
        for reply in replies:
            if found := RECEIPT.search(reply["text"]):
                return found.group(1)
        options = (replies[-1].get("options") or []) if replies else []
        text = "确认" if "确认" in options else "跳过" if "跳过" in options else ""
        if not text:
            raise SmokeFailure(f"the web chat asked something the smoke does not answer: {replies[-1:]}")
    raise SmokeFailure("no receipt number after six messages")


def console_login(client: Client, account: dict[str, str]) -> None:
    """The 受理员's morning: the login form (its CSRF field), the queue, and Leaflet served from the installed
    package (the browser code must be in the wheel, not only in the source tree)."""
    status, _, body = client.get("/console/login")
    token = re.search(rb'name="csrf_token" value="([^"]+)"', body)
    if status != 200 or token is None:
        raise SmokeFailure(f"/console/login answered {status} without a csrf_token field")
    fields = {"csrf_token": token.group(1).decode(), "username": account["name"], "password": account["password"]}
    status, _, body = client.post_form("/console/login", fields)
    if status != 200 or "受理队列".encode() not in body:
        raise SmokeFailure(f"the console login of {account['name']} did not reach the 受理 queue ({status})")
    status, ctype, _ = client.get("/console/static/node_modules/leaflet/dist/leaflet.js")
    if status != 200 or "javascript" not in ctype:
        raise SmokeFailure(f"Leaflet is not served by the installed package ({status} {ctype})")


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="gridline-smoke-"))
    started = time.monotonic()
    log_path = work / "serve.log"
    server: subprocess.Popen | None = None
    try:
        step(f"fresh venv in {work}")
        src = work / "src"
        shutil.copytree(
            ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "var", "build", "*.egg-info")
        )
        subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True)
        bin_dir = work / "venv" / "bin"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GRIDLINE_", "PYTHON", "VIRTUAL_ENV"))}
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        step("pip install . (no extras)")
        run([str(bin_dir / "pip"), "install", "--quiet", str(src)], env=env, cwd=work, timeout=900)
        port = free_port()
        env |= {
            "GRIDLINE_DATABASE_URL": f"sqlite:///{work / 'gridline.db'}",
            "GRIDLINE_DATA_DIR": str(work / "var"),
            "GRIDLINE_HTTP_PORT": str(port),
            "GRIDLINE_AGI_PORT": str(free_port()),
        }
        step("gridline init --demo --demo-staff")
        init = json.loads(
            run([str(bin_dir / "gridline"), "init", "--demo", "--demo-staff", "--json"], env=env, cwd=work, timeout=300)
        )
        step(f"gridline serve on port {port}")
        with log_path.open("w") as log:
            server = subprocess.Popen(
                [str(bin_dir / "gridline"), "serve"], env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT
            )
        client = Client(f"http://127.0.0.1:{port}")
        health = wait_for_health(client, server)
        if health.get("status") != "ok":
            raise SmokeFailure(f"/healthz: {health}")
        step(f"/healthz ok after {time.monotonic() - started:.0f} s: {health}")
        for path in ("/", "/chat", "/api/v1/openapi.json"):
            status, _, _ = client.get(path)
            if status != 200:
                raise SmokeFailure(f"{path} answered {status}")
        number = report_through_web_chat(client)
        step(f"web chat report filed as case {number}")
        [operator] = [a for a in init["staff"] if a["role"] == "operator"]
        console_login(Client(client.base), operator)
        step("the 受理员 logged in to the console; Leaflet is served")
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=STOP_LIMIT_S)
        except subprocess.TimeoutExpired:
            server.kill()
            raise SmokeFailure(f"gridline serve did not stop within {STOP_LIMIT_S} s of SIGTERM") from None
        if code != 0:
            raise SmokeFailure(f"gridline serve exited {code} on SIGTERM")
        if "Traceback" in log_path.read_text(errors="replace"):
            raise SmokeFailure("a traceback in the server's log")
        step(f"passed in {time.monotonic() - started:.0f} s")
        return 0
    except (SmokeFailure, subprocess.TimeoutExpired) as exc:
        print(f"smoke: FAILED: {exc}", file=sys.stderr)
        if log_path.exists():
            print("---- gridline serve log ----", file=sys.stderr)
            print(log_path.read_text(errors="replace")[-6000:], file=sys.stderr)
        return 1
    finally:
        if server is not None and server.poll() is None:
            server.kill()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
