"""Runners per backend. Each backend registers a factory; nothing is imported until used."""

from mmedge.backends.base import Runner, available_backends, get_runner_factory, register_backend

__all__ = ["Runner", "available_backends", "get_runner_factory", "register_backend"]
