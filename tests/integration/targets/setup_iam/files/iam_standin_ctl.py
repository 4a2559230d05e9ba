"""Start or stop the LOCAL STAND-IN for IBM Cloud IAM (tests/standins/iam_server.py) for
an integration target. Not IBM's service: a stdlib HTTP server on 127.0.0.1.

  iam_standin_ctl.py start --repo REPO --dir DIR   prints {"url": ..., "pid": ...}
  iam_standin_ctl.py stop --dir DIR

The admin key comes from the environment (IAM_STANDIN_ADMIN_KEY), never from argv.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time


def start(repo: str, state_dir: str) -> int:
    os.makedirs(state_dir, exist_ok=True)
    url_file = os.path.join(state_dir, "url")
    with open(url_file, "w", encoding="utf-8"):
        pass
    with open(url_file, "a", encoding="utf-8") as out:
        # Its own session: the stand-in outlives this command until stop.
        proc = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, os.path.join(repo, "tests", "standins", "iam_server.py"), "--port", "0", "--print-url"],
            stdout=out, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, start_new_session=True)
    with open(os.path.join(state_dir, "pid"), "w", encoding="utf-8") as out:
        out.write(str(proc.pid))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with open(url_file, encoding="utf-8") as src:
            url = src.read().strip()
        if url:
            print(json.dumps({"url": url, "pid": proc.pid}))
            return 0
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    print("the IAM stand-in did not start", file=sys.stderr)
    return 1


def stop(state_dir: str) -> int:
    try:
        with open(os.path.join(state_dir, "pid"), encoding="utf-8") as src:
            pid = int(src.read())
    except (OSError, ValueError):
        return 0
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return 0
    for _attempt in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return 0
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["start", "stop"])
    parser.add_argument("--repo")
    parser.add_argument("--dir", required=True)
    args = parser.parse_args()
    return start(args.repo, args.dir) if args.command == "start" else stop(args.dir)


if __name__ == "__main__":
    sys.exit(main())
