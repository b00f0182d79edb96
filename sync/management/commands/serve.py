"""Run the web server and a job worker together in the foreground; Ctrl-C stops both."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Start gunicorn (web) and a django-q2 cluster (jobs) as one foreground process."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8000", help="address:port for the web server")
        parser.add_argument("--web-workers", type=int, default=2)

    def handle(self, *args: Any, **options: Any) -> None:
        python = sys.executable
        bind = options["bind"]
        children = [
            subprocess.Popen(
                [
                    python,
                    "-m",
                    "gunicorn",
                    "config.wsgi",
                    "--bind",
                    bind,
                    "--workers",
                    str(options["web_workers"]),
                    # threads, so a request that calls the built-in sandbox on this same server is answered
                    "--threads",
                    "4",
                    "--access-logfile",
                    "-",
                ]
            ),
            subprocess.Popen([python, "manage.py", "qcluster"]),
        ]
        self.stdout.write(
            f"Ledgerlink is running: http://{bind}/admin/   (Ctrl-C stops the web server and the worker)"
        )
        stopping = False

        def stop(*_: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.5)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
        failed = [child.args[2] for child in children if child.returncode not in (0, -signal.SIGTERM, None)]
        if failed and not stopping:
            self.stderr.write(f"stopped because a process exited: {failed}")
            sys.exit(1)
