"""Describe the machine a benchmark ran on (printed at the top of every benchmark)."""

from __future__ import annotations

import os
import platform


def machine_line() -> str:
    try:
        import torch

        torch_v = torch.__version__
    except ImportError:
        torch_v = "-"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"machine: {cpu}, {os.cpu_count()} cores, python {platform.python_version()}, "
            f"torch {torch_v}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}")
