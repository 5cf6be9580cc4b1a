"""What payload logging costs a prediction: the server without it, with a sink that takes
every event, and with a sink that is down, side by side.

    python -m benchmarks.payload            # the full run (about 5 minutes)
    python -m benchmarks.payload --smoke    # a short run that only proves it runs

Renders the default project, trains it, and serves it in three configurations by the method
of bench.py (each alone, its server on one core and wrk on the other, rounds in rotated
order, a discarded warm-up before each point): PAYLOAD_LOG_URL unset; set to a sink this
process runs on 127.0.0.1, which answers 202 to every event and counts them, for every
request and for a tenth of them (PAYLOAD_LOG_SAMPLE=0.1); set to a port where nothing
listens. The report gives requests/s, p50 and p99 per point, each against the
server without payload logging, and how many events the sink received. The sink is a Python
server in this process, not pinned: a sink slower than the server, as a real one may be, so
the server's queue fills and drops, as it must, without slowing a prediction.
"""

import http.server
import sys
import threading
from pathlib import Path
from typing import Any

from benchmarks import bench
from benchmarks.bench import FULL, Plan
from benchmarks.run import arguments, free_port, results_folder, write_results
from benchmarks.servers import Server, ours

SMOKE = Plan(rounds=2, seconds=1, warmup_seconds=0, connections=[1, 16])


class Sink(http.server.BaseHTTPRequestHandler):
    """Takes every event and answers 202; counts them."""

    received = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        with Sink.lock:
            Sink.received += 1
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def configurations(root: Path, project: Path, sink: str) -> list[Server]:
    dead = f"http://127.0.0.1:{free_port()}/events"  # nothing listens there
    return [
        ours(root, project, "off", {}, runtime="onnx"),
        ours(root, project, "sink", {"PAYLOAD_LOG_URL": sink}, runtime="onnx"),
        ours(
            root,
            project,
            "sink-sampled",
            {"PAYLOAD_LOG_URL": sink, "PAYLOAD_LOG_SAMPLE": "0.1"},
            runtime="onnx",
        ),
        ours(root, project, "sink-down", {"PAYLOAD_LOG_URL": dead}, runtime="onnx"),
    ]


def comparison(load: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for rows, connections, found_here in bench.by_point(load):
        off = found_here["off"]["requests_per_s"]
        for name in ("off", "sink", "sink-sampled", "sink-down"):
            row = found_here[name]
            found.append(
                {
                    "rows": rows,
                    "connections": connections,
                    "configuration": name,
                    "requests_per_s": row["requests_per_s"],
                    "p50_ms": row["p50_ms"],
                    "p99_ms": row["p99_ms"],
                    "errors": row["errors"],
                    "over_off": row["requests_per_s"] / off,
                }
            )
    return found


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"# Payload logging's cost, {results['date']}",
        "",
        f"Measured on {results['machine']}"
        + (" (a smoke run: its figures mean nothing)" if results["smoke"] else "")
        + f". {results['rounds']} rounds; at every point {results['warmup_seconds']} s of load "
        f"discarded, then {results['seconds']} s measured; each server alone, pinned to one "
        "core, wrk (one thread) on the other; the sink runs in the benchmark's process. "
        "Medians over rounds.",
        "",
        "| rows | connections | configuration | req/s | against off | p50 ms | p99 ms | errors |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for c in results["comparison"]:
        lines.append(
            f"| {c['rows']} | {c['connections']} | {c['configuration']} | "
            f"{c['requests_per_s']:,.0f} | {c['over_off']:.2f}x | {c['p50_ms']:.2f} | "
            f"{c['p99_ms']:.2f} | {c['errors']} |"
        )
    lines += [
        "",
        f"The sink received {results['sink_received']:,} events in all.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = arguments(__doc__, "payload", "a short run: 2 rounds of 1 s")
    args = parser.parse_args()
    plan = SMOKE if args.smoke else FULL
    results = bench.run_header(plan, args.smoke)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sink = f"http://127.0.0.1:{server.server_address[1]}/events"
    project = bench.render_project(args.root)
    servers = configurations(args.root, project, sink)
    bench.install(servers, args.root)
    bench.train_reference(servers[0], args.root, project)
    results["configurations"] = {s.configuration: s.settings for s in servers}
    results["measurements"] = bench.measure_rounds(servers, plan, args.root)
    results["load"] = bench.summarize(results["measurements"])
    results["comparison"] = comparison(results["load"])
    results["sink_received"] = Sink.received
    server.shutdown()
    folder = results_folder(args.results, args.root, args.smoke, results["date"])
    write_results(results, folder, "payload", markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
