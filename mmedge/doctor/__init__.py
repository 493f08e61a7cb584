"""`mmedge doctor`: what this machine can run, and the one command that fixes each problem.

Two halves, so every verdict is testable anywhere: `environment` gathers facts from the live machine
into an `Environment` value (JSON round-trippable, so recorded Jetson/GPU machines replay in tests),
and `rules` turns an Environment into checks with a status and a fix — pure functions, no I/O.
"""
