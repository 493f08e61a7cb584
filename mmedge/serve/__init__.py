"""Serving on NVIDIA Triton: PyTriton for the Pipeline, a native model repository, a client load test."""
