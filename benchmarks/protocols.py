"""The Open Inference Protocol's transports, measured: V2 over gRPC beside MLServer's gRPC
server on the same model, and our HTTP route with binary tensors against the same route
with JSON.

    python -m benchmarks.protocols            # the full run (about 8 minutes on 2 cores)
    python -m benchmarks.protocols --smoke    # a short run that only proves everything works

The method is bench.py's: the same rendered project, reference model and peer environments;
each server runs alone, pinned to one core, with h2load (one thread) on the other; rounds in
a rotated order; medians over rounds. gRPC calls are ModelInfer with one FP64 [rows, 4] tensor
in raw_input_contents, as tritonclient sends it, both outputs asked for, each connection
keeping one stream busy. (Typed contents are no choice: MLServer answers them INTERNAL when an
output holds strings, as the labels do.) Before any timing, every server must give our labels
and probabilities over gRPC for the bodies the load sends; the HTTP answers are not compared.
"""

import importlib.util
import json
import statistics
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import numpy as np

from benchmarks.bench import (
    AGREEMENT_RTOL,
    FULL,
    ROWS_PER_REQUEST,
    SMOKE,
    Plan,
    prepare,
    round_order,
    run_header,
)
from benchmarks.load import LoadResult, run_h2load
from benchmarks.run import arguments, results_folder, write_results
from benchmarks.servers import MLSERVER_BATCHING, Server, feature_names, mlserver, training_rows
from benchmarks.servers import ours as ours_server

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
GRPC_HEADERS = {"content-type": "application/grpc", "te": "trailers"}
BINARY_HEADER = "Inference-Header-Content-Length"
OUTPUTS = ["predict", "predict_proba"]


@dataclass
class Transport:
    """One way of sending the same request to a running server."""

    name: str  # grpc, http-json or http-binary
    url: str
    body: bytes
    headers: dict[str, str]
    http1: bool
    answer_bytes: int | None = None  # gRPC: the DATA bytes of one good answer

    def load(self, connections: int, seconds: int) -> LoadResult:
        return run_h2load(
            self.url,
            connections,
            seconds,
            self.body,
            self.headers,
            http1=self.http1,
            answer_bytes=self.answer_bytes,
        )


def load_proto(project: Path) -> ModuleType:
    """The project's generated inference_pb2 module: the messages both servers speak."""
    path = next(project.glob("src/*/serve/grpc/inference_pb2.py"))
    spec = importlib.util.spec_from_file_location("inference_pb2", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def infer_request(pb: ModuleType, model: str, matrix: list[list[float]]) -> Any:
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="input-0", datatype="FP64", shape=[len(matrix), len(matrix[0])]
    )
    outputs = [pb.ModelInferRequest.InferRequestedOutputTensor(name=n) for n in OUTPUTS]
    raw = np.asarray(matrix, dtype="<f8").tobytes()
    return pb.ModelInferRequest(
        model_name=model, inputs=[tensor], outputs=outputs, raw_input_contents=[raw]
    )


def grpc_frame(message: bytes) -> bytes:
    """A gRPC message on the wire: not compressed, its length, the bytes."""
    return struct.pack(">?I", False, len(message)) + message


def decode_bytes(raw: bytes) -> list[str]:
    """V2 BYTES raw contents: each element is its 4-byte little-endian length, then itself."""
    items, offset = [], 0
    while offset < len(raw):
        (size,) = struct.unpack_from("<I", raw, offset)
        items.append(raw[offset + 4 : offset + 4 + size].decode())
        offset += 4 + size
    return items


def read_infer_response(response: Any) -> tuple[list[str], np.ndarray]:
    """Labels and the probability matrix, from typed or raw contents."""
    outputs = {o.name: (i, o) for i, o in enumerate(response.outputs)}
    (i, labels), (j, proba) = outputs["predict"], outputs["predict_proba"]
    if response.raw_output_contents:
        label_values = decode_bytes(response.raw_output_contents[i])
        proba_values = np.frombuffer(response.raw_output_contents[j], dtype="<f8")
    else:
        label_values = [value.decode() for value in labels.contents.bytes_contents]
        proba_values = np.array(proba.contents.fp64_contents)
    return label_values, proba_values.reshape(list(proba.shape))


def http_bodies(model: str, matrix: list[list[float]]) -> dict[str, tuple[bytes, dict[str, str]]]:
    """The V2 request with JSON tensors, and with binary tensors in and out."""
    shape = [len(matrix), len(matrix[0])]
    tensor = {"name": "input-0", "shape": shape, "datatype": "FP64"}
    as_json = {
        "inputs": [{**tensor, "data": matrix}],
        "outputs": [{"name": name} for name in OUTPUTS],
    }
    raw = np.asarray(matrix, dtype="<f8").tobytes()
    header = json.dumps(
        {
            "inputs": [{**tensor, "parameters": {"binary_data_size": len(raw)}}],
            "outputs": [{"name": n, "parameters": {"binary_data": True}} for n in OUTPUTS],
        }
    ).encode()
    return {
        "http-json": (json.dumps(as_json).encode(), {"content-type": "application/json"}),
        "http-binary": (
            header + raw,
            {"content-type": "application/octet-stream", BINARY_HEADER: str(len(header))},
        ),
    }


@dataclass
class Configuration:
    server: Server
    model: str  # the name it serves the model under
    transports: list[str]

    @property
    def key(self) -> str:
        return self.server.key

    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.server.port + 1}"

    def transports_for(self, pb: ModuleType, matrix: list[list[float]]) -> list[Transport]:
        """Every transport of this configuration, for a running server: the gRPC body's
        answer is asked once to learn its size."""
        found = []
        for name in self.transports:
            if name == "grpc":
                request = infer_request(pb, self.model, matrix)
                response = self.call(pb, request)
                found.append(
                    Transport(
                        name,
                        f"http://{self.grpc_target()}{MODEL_INFER}",
                        grpc_frame(request.SerializeToString()),
                        GRPC_HEADERS,
                        http1=False,
                        answer_bytes=len(grpc_frame(response.SerializeToString())),
                    )
                )
            else:
                body, headers = http_bodies(self.model, matrix)[name]
                url = f"http://127.0.0.1:{self.server.port}/v2/models/{self.model}/infer"
                found.append(Transport(name, url, body, headers, http1=True))
        return found

    def call(self, pb: ModuleType, request: Any) -> Any:
        with grpc.insecure_channel(self.grpc_target()) as channel:
            infer = channel.unary_unary(
                MODEL_INFER,
                request_serializer=lambda message: message.SerializeToString(),
                response_deserializer=pb.ModelInferResponse.FromString,
            )
            return infer(request, timeout=10)


def configurations(root: Path, project: Path) -> list[Configuration]:
    model = project.name  # the project's slug names its V2 model
    return [
        Configuration(
            ours_server(root, project, "default", {}),
            model,
            ["grpc", "http-json", "http-binary"],
        ),
        Configuration(mlserver(root, "default", {}), "iris", ["grpc"]),
        Configuration(mlserver(root, "best", MLSERVER_BATCHING), "iris", ["grpc"]),
    ]


def matrix_of(root: Path, rows: int) -> list[list[float]]:
    names = feature_names(root)
    return [[row[name] for name in names] for row in training_rows(root, rows)]


def check_agreement(found: list[Configuration], root: Path, pb: ModuleType) -> dict[str, Any]:
    """Every server's gRPC answer equals ours: the same labels, probabilities within
    AGREEMENT_RTOL (columns in the same class order); RuntimeError otherwise."""
    answers = {}
    for configuration in found:
        configuration.server.start(root)
        try:
            for rows in ROWS_PER_REQUEST:
                request = infer_request(pb, configuration.model, matrix_of(root, rows))
                answers[configuration.key, rows] = read_infer_response(
                    configuration.call(pb, request)
                )
        finally:
            configuration.server.stop()
    reference = found[0].key
    differences: dict[str, dict[str, float]] = {}
    for configuration in found:
        differences[configuration.key] = {}
        for rows in ROWS_PER_REQUEST:
            labels, proba = answers[configuration.key, rows]
            expected_labels, expected = answers[reference, rows]
            if labels != expected_labels or proba.shape != expected.shape:
                raise RuntimeError(f"{configuration.key}, {rows} rows: labels {labels}")
            if not np.allclose(proba, expected, rtol=AGREEMENT_RTOL):
                raise RuntimeError(f"{configuration.key}, {rows} rows: probabilities differ")
            differences[configuration.key][str(rows)] = float(np.abs(proba - expected).max())
    return {"reference": reference, "rtol": AGREEMENT_RTOL, "max_abs_difference": differences}


def measure(found: list[Configuration], plan: Plan, root: Path, pb: ModuleType) -> list[dict]:
    measurements = []
    for round_index in range(plan.rounds):
        for configuration in round_order(found, round_index):
            configuration.server.start(root)
            try:
                for rows in ROWS_PER_REQUEST:
                    for transport in configuration.transports_for(pb, matrix_of(root, rows)):
                        for connections in plan.connections:
                            if plan.warmup_seconds:
                                transport.load(connections, plan.warmup_seconds)
                            result = transport.load(connections, plan.seconds)
                            print(
                                f"protocols: {configuration.key:16s} {transport.name:11s} "
                                f"rows={rows:<4d} conns={connections:<3d} "
                                f"{result.requests_per_s:9,.0f} req/s  p99 {result.p99_ms:7.2f} ms"
                                f"  errors {result.errors}",
                                flush=True,
                            )
                            measurements.append(
                                {
                                    "round": round_index,
                                    "configuration": configuration.key,
                                    "transport": transport.name,
                                    "rows": rows,
                                    "connections": connections,
                                    **result.as_dict(),
                                }
                            )
            finally:
                configuration.server.stop()
    return measurements


def summarize(measurements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    points: dict[tuple, list[dict[str, Any]]] = {}
    for m in measurements:
        key = (m["configuration"], m["transport"], m["rows"], m["connections"])
        points.setdefault(key, []).append(m)
    return [
        {
            "configuration": configuration,
            "transport": transport,
            "rows": rows,
            "connections": connections,
            "rounds": len(runs),
            "requests_per_s": statistics.median(r["requests_per_s"] for r in runs),
            "requests_per_s_min": min(r["requests_per_s"] for r in runs),
            "requests_per_s_max": max(r["requests_per_s"] for r in runs),
            "p50_ms": statistics.median(r["p50_ms"] for r in runs),
            "p99_ms": statistics.median(r["p99_ms"] for r in runs),
            "requests": sum(r["requests"] for r in runs),
            "errors": sum(r["errors"] for r in runs),
        }
        for (configuration, transport, rows, connections), runs in points.items()
    ]


def point(load: list[dict], configuration: str, transport: str, rows: int, connections: int):
    return next(
        r
        for r in load
        if (r["configuration"], r["transport"], r["rows"], r["connections"])
        == (configuration, transport, rows, connections)
    )


def comparison(
    load: list[dict], title: str, ours: tuple[str, str], other: tuple[str, str]
) -> list[str]:
    """One table: `ours` against `other` at every point, as (configuration, transport)."""
    lines = [
        f"## {title}",
        "",
        f"| rows | connections | {ours[0]} {ours[1]} req/s | p99 ms | {other[0]} {other[1]} "
        "req/s | p99 ms | ratio | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in sorted(
        (r for r in load if (r["configuration"], r["transport"]) == ours),
        key=lambda r: (r["rows"], r["connections"]),
    ):
        peer = point(load, *other, run["rows"], run["connections"])
        lines.append(
            f"| {run['rows']} | {run['connections']} | {run['requests_per_s']:,.0f} "
            f"| {run['p99_ms']:.2f} | {peer['requests_per_s']:,.0f} | {peer['p99_ms']:.2f} "
            f"| {run['requests_per_s'] / peer['requests_per_s']:.2f}x "
            f"| {run['errors'] + peer['errors']} |"
        )
    return [*lines, ""]


def markdown(results: dict[str, Any]) -> str:
    load = results["load"]
    ours = results["agreement"]["reference"]
    differences = "; ".join(
        f"{key} " + ", ".join(f"{d:.1e} ({rows} rows)" for rows, d in by_rows.items())
        for key, by_rows in results["agreement"]["max_abs_difference"].items()
    )
    lines = [
        "# The Open Inference Protocol's transports",
        "",
        f"Measured {results['date']} on {results['machine']}. Each server ran alone, pinned to "
        f"CPU {results['server_cpu']}, with h2load (one thread) on CPU {results['load_cpu']}; "
        f"{results['rounds']} rounds in a rotated order, {results['warmup_seconds']} s of "
        f"load discarded then {results['seconds']} s measured at every point. Requests/s "
        "counts successes only (gRPC: answers that carried a whole response message): the "
        "median over rounds; p50 and p99 are medians over rounds. gRPC: ModelInfer with one "
        "FP64 [rows, 4] tensor in raw_input_contents (as tritonclient sends it; MLServer answers "
        "typed contents INTERNAL when an output holds strings) and both outputs, over HTTP/2 "
        "connections of one stream each. HTTP: the V2 infer route over HTTP/1.1 keep-alive.",
        "",
    ]
    for peer in ("mlserver-best", "mlserver-default"):
        lines += comparison(load, f"gRPC: ours against {peer}", (ours, "grpc"), (peer, "grpc"))
    lines += comparison(
        load, "HTTP: binary tensors against JSON", (ours, "http-binary"), (ours, "http-json")
    )
    lines += [
        "## Agreement",
        "",
        f"Before any timing, every server answered {ours}'s labels and probabilities over "
        f"gRPC (rtol {results['agreement']['rtol']}). Largest difference: {differences}.",
        "",
        "## Configurations",
        "",
        *(f"- **{key}**: {settings}" for key, settings in results["configurations"].items()),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    args = arguments(__doc__, "bench", "a short run: 2 rounds of 1 s").parse_args()

    plan = SMOKE if args.smoke else FULL
    project, _ = prepare(args.root)
    pb = load_proto(project)
    found = configurations(args.root, project)
    results = run_header(plan, args.smoke)
    results["configurations"] = {c.key: c.server.settings for c in found}
    results["agreement"] = check_agreement(found, args.root, pb)
    results["measurements"] = measure(found, plan, args.root, pb)
    results["load"] = summarize(results["measurements"])
    folder = results_folder(args.results, args.root, args.smoke, results["date"])
    write_results(results, folder, "protocols", markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
