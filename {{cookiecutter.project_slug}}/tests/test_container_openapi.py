"""The OpenAPI document against the running image, checked by schemathesis, a generic OpenAPI
fuzzer. It sends every operation requests made from the document, valid and invalid, and checks
each answer against the document: no server error, a documented status code and content type,
and a body that matches the documented schema.

The run is bounded and reproducible: a fixed number of cases per operation, generated in
schemathesis' deterministic mode (derandomized: the same cases on every run), one request at a
time, each with a deadline, and the whole run with one. It runs without API_TOKEN: the token
only adds 401s, which the document declares when it is set (test_openapi.py).
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from .docker_support import serving

pytestmark = pytest.mark.container

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
CASES_PER_OPERATION = 50
REQUEST_DEADLINE_SECONDS = 5
RUN_DEADLINE_SECONDS = 240
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")


def fuzz(url: str, report: Path) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{url}/openapi.json",
        f"--checks={','.join(CHECKS)}",
        f"--max-examples={CASES_PER_OPERATION}",
        # Not the stateful phase, which chains calls through links between operations: the
        # server keeps no state between requests, so it would double the run for little.
        "--phases=examples,coverage,fuzzing",
        "--generation-deterministic",
        "--workers=1",
        f"--request-timeout={REQUEST_DEADLINE_SECONDS}",
        "--no-color",
        "--report=json",
        f"--report-json-path={report}",
    ]
    return subprocess.run(
        command,
        cwd=report.parent,
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
        capture_output=True,
        text=True,
        timeout=RUN_DEADLINE_SECONDS,
    )


def test_openapi_fuzz_finds_no_server_error_and_no_answer_off_the_document(
    docker: Any, image: str, tmp_path: Path
) -> None:
    report = tmp_path / "schemathesis.json"
    with serving(docker, image) as server:
        document = httpx.get(server.url + "/openapi.json").json()
        run = fuzz(server.url, report)
        summary = json.loads(report.read_text())
        operations, cases = summary["operations"], summary["test_cases"]
        failures = sum(failure["count"] for failure in summary["failures"])
        errors = sum(error["count"] for error in summary["errors"])
        print(
            f"schemathesis {summary['schemathesis_version']}: {operations['tested']} of "
            f"{operations['total']} operations, {cases['generated']} cases, {failures} "
            f"failures, {errors} errors, in {summary['running_time']:.0f} s"
        )
        assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-3000:]
        assert failures == errors == 0, run.stdout[-12000:]
        documented = sum(len(methods) for methods in document["paths"].values())
        assert operations["tested"] == operations["total"] == documented
