"""`make demo`: start the sandbox in the background, run snsync against it end to end as an admin
would (test-connection, plan, run, run again, logs), show the resulting ServiceNow rows, stop."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import requests

from snsync.sandbox.demo_instance import DEMO_PASSWORD

DEMO_DIR = Path(".demo")
HINT_USER = "adele.vance@contoso.example"
FIELDS = "user_name,first_name,last_name,title,department,manager,active"


def main() -> int:
    """Run the demo; returns the process exit code."""
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir()
    sandbox_dir = DEMO_DIR / "sandbox"
    log = (DEMO_DIR / "sandbox.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "snsync", "sandbox", "--dir", str(sandbox_dir)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        info = _wait_for(sandbox_dir / "sandbox.json", server)
        config = str(sandbox_dir / "config.yaml")
        _banner(f"Sandbox up: Graph {info['graph_url']}, ServiceNow {info['servicenow_url']}")
        steps = [
            ("Check both connections", ["test-connection"], {0}),
            ("What would change (no writes)", ["plan"], {0}),
            ("Sync once", ["run", "--once"], {0, 1}),
            ("Sync again: nothing left to change", ["run", "--once"], {0}),
            ("Warnings in the provisioning log", ["logs", "--status", "Warning"], {0}),
            ("Status: cycles (full, then incremental), links, holds", ["status"], {0}),
        ]
        for title, args, expected in steps:
            _banner(title + f"  $ snsync {' '.join(args)}")
            code = subprocess.call([sys.executable, "-m", "snsync", "--config", config, *args])
            if code not in expected:
                print(f"demo: 'snsync {' '.join(args)}' exited {code}", file=sys.stderr)
                return 1
            if args == ["run", "--once"] and title.startswith("Sync once"):
                _show_rows(info)
        _banner("Done. The sandbox is stopped now; to try more, start a fresh one:")
        sandbox_cmd, provision_cmd = closing_hint()
        print(f"  {sandbox_cmd}     # leave it running; in a second terminal:")
        print(f"  {provision_cmd}")
        return 0
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def closing_hint() -> tuple[str, str]:
    """Two commands that work as printed from the current folder: start a sandbox in a fresh
    folder, then provision one of its users step by step."""
    script = Path(sys.executable).with_name("snsync")
    snsync = (
        _relative(script) if script.is_file() else f"{_relative(Path(sys.executable))} -m snsync"
    )
    folder = DEMO_DIR / "try"
    return (
        f"{snsync} sandbox --dir {folder}",
        f"{snsync} --config {folder / 'config.yaml'} provision {HINT_USER}",
    )


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _wait_for(path: Path, server: subprocess.Popen[bytes]) -> dict[str, str]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"demo: the sandbox exited early; see {DEMO_DIR / 'sandbox.log'}")
        if path.is_file() and (path.parent / "config.yaml").is_file():
            return dict(json.loads(path.read_text()))
        time.sleep(0.1)
    raise SystemExit("demo: the sandbox did not start within 30 s")


def _show_rows(info: dict[str, str]) -> None:
    _banner("ServiceNow sys_user rows snsync owns (display values)")
    response = requests.get(
        f"{info['servicenow_url']}/api/now/table/sys_user",
        params={
            "sysparm_query": "sourceSTARTSWITHentra:^ORDERBYuser_name",
            "sysparm_fields": FIELDS,
            "sysparm_display_value": "true",
            "sysparm_exclude_reference_link": "true",
            "sysparm_limit": "8",
        },
        auth=("admin", DEMO_PASSWORD),
        verify=info["ca_pem"],
        timeout=10,
    )
    response.raise_for_status()
    rows = response.json()["result"]
    columns = FIELDS.split(",")
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))
    print(f"({response.headers.get('X-Total-Count', '?')} rows in all)")


def _banner(text: str) -> None:
    print(f"\n=== {text}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
