"""Making and activating a pipeline's runners: on a small thread pool where the backend allows it.

A cold start is mostly waiting on work that releases the GIL: sha256 of each artifact, reading the
cached optimized graph, and ONNX Runtime's session creation. Done one component after another it
leaves every other core idle; on a thread pool, with the tokenizer loaded in the calling thread
meanwhile, it overlaps (edge int8 on 2 cores: figures in docs/performance.md). Backends whose runners
hold per-thread device state (CUDA contexts) load one by one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, TypeVar

from mmedge.runtime.options import RunnerOptions, usable_cores

if TYPE_CHECKING:
    from mmedge.bundle import Bundle
    from mmedge.runtime.backends import Backend
    from mmedge.runtime.runner import Runner

T = TypeVar("T")


def load_runners(backend: Backend, bundle: Bundle, keys: dict[str, str], options: RunnerOptions,
                 built: dict[str, Runner], alongside: Callable[[], T]) -> T:
    """Fill `built` with an active runner per component of `keys`; run `alongside()` meanwhile, return its result.

    `built` holds every runner made so far even when a step fails (the caller deactivates them); after a
    failure the loads not started are cancelled, and the first failure is raised once every started one
    has finished, so nothing is left loading.
    """
    def load(component: str, key: str) -> None:
        runner = backend.make_runner(bundle, component, key, options)
        built[component] = runner
        runner.activate()

    workers = min(len(keys), usable_cores()) if backend.parallel_load else 1
    if workers < 2:
        result = alongside()  # first: a bad preprocessing spec fails before any session is made
        for component, key in keys.items():
            load(component, key)
        return result
    import_runtime(backend)
    with ThreadPoolExecutor(workers, thread_name_prefix="mmedge-load") as pool:
        futures = [pool.submit(load, component, key) for component, key in keys.items()]
        try:
            result = alongside()
            wait(futures, return_when=FIRST_EXCEPTION)
        finally:  # a failure here, there or Ctrl-C: no further session is started
            stop(futures)
        for future in futures:
            if not future.cancelled():
                future.result()
    return result


def stop(futures: list[Future[None]]) -> None:
    """Cancel the loads not started yet (after a failure, more sessions are wasted time); wait for the rest."""
    for future in futures:
        future.cancel()
    wait(futures)


def import_runtime(backend: Backend) -> None:
    """Import the backend's runtime here, once, rather than from several load threads at the same time."""
    if backend.runtime_module:
        try:
            importlib.import_module(backend.runtime_module)
        except ImportError:  # the runner reports it, naming the package to install
            return
