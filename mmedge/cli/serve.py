"""`mmedge serve`: serve a bundle's Pipeline on NVIDIA Triton (PyTriton) with dynamic batching."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from mmedge.cli.choices import BackendName
from mmedge.cli.common import err_console, handle_errors


def register(app: typer.Typer) -> None:
    """Add the `serve` command."""
    app.command("serve")(serve)


@handle_errors
def serve(
    bundle: Path = typer.Argument(..., help="Bundle directory (mmedge export)."),
    backend: BackendName = typer.Option("onnxruntime", help="Runtime of the served pipeline."),
    precision: str = typer.Option("fp32", help="fp32 | fp16 | int8 | auto | component=precision,…"),
    threads: int | None = typer.Option(None, min=1, help="Threads per session (default: the backend's)."),
    address: str = typer.Option("127.0.0.1", help="Address the HTTP, gRPC and metrics endpoints bind (0.0.0.0: all)."),
    http_port: int = typer.Option(8000, "--http-port", help="HTTP/REST port (KServe v2 protocol)."),
    grpc_port: int = typer.Option(8001, "--grpc-port", help="gRPC port."),
    metrics_port: int = typer.Option(8002, "--metrics-port", help="Prometheus metrics port (/metrics)."),
    max_batch: int = typer.Option(16, "--max-batch", help="Dynamic batching: most rows per model call."),
    max_queue_delay_us: int = typer.Option(1000, "--max-queue-delay-us",
                                           help="Dynamic batching: longest wait for more requests (µs)."),
    instances: int = typer.Option(1, "--instances", help="Model instances (each its own Pipeline)."),
    model_name: str = typer.Option("mmedge", "--model-name", help="Name of the model on the server."),
    as_json: bool = typer.Option(False, "--json", help="Print the endpoints as JSON once ready."),
) -> None:
    """Serve the bundle on Triton until SIGTERM/Ctrl-C (inputs: text, image, audio as BYTES; see docs/serving.md)."""
    from mmedge.serve.server import ServeOptions
    from mmedge.serve.server import serve as run

    opts = ServeOptions(backend=backend, precision=precision, threads=threads, address=address,
                        http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port, max_batch=max_batch,
                        max_queue_delay_us=max_queue_delay_us, instances=instances, model_name=model_name)
    stdout = sys.stdout
    endpoints = {"model": model_name, "http": f"{address}:{http_port}", "grpc": f"{address}:{grpc_port}",
                 "metrics": f"http://{address}:{metrics_port}/metrics", **opts.batching()}

    def ready() -> None:
        if as_json:  # to the real stdout (Triton's log is on stderr) and flushed: a supervisor learns at once
            stdout.write(json.dumps({"ready": True, **endpoints}, indent=2) + "\n")
            stdout.flush()
        else:
            err_console.print(f"serving '{model_name}': HTTP {endpoints['http']}, gRPC {endpoints['grpc']}, "
                              f"metrics {endpoints['metrics']} (batch ≤ {max_batch}, delay {max_queue_delay_us} µs, "
                              f"{instances} instance(s)); SIGTERM or Ctrl-C stops", highlight=False)

    run(bundle, opts, on_ready=ready)
