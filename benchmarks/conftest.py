"""Shared benchmark plumbing: the same-run matmul roofline and extra_info every benchmark records.

    def test_step(benchmark, perf): perf.measure(benchmark, fn, flops=..., batch=...)

Under ``--benchmark-disable`` (make test) every benchmark body runs once as an ordinary test, so the
sizes shrink to keep the suite fast; ``make bench`` runs them at full size and writes bench.json.
"""

from __future__ import annotations

import pytest
import torch

ROOFLINE_N = 2048  # square fp32 matmul (test_matmul_roofline): large enough to reach the BLAS peak on 2 cores


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Perf:
    """Runs a benchmark and records device, versions, threads, batch size, FLOPs and GFLOP/s."""

    def __init__(self, config: pytest.Config, device: torch.device) -> None:
        self.disabled = bool(config.getoption("benchmark_disable", False))
        self.device = device

    def size(self, full: int, smoke: int) -> int:
        """Full size for timing, a smoke size when benchmarks only run as tests."""
        return smoke if self.disabled else full

    def measure(self, benchmark, fn, *, flops: float, batch: int, **extra):
        def timed():
            out = fn()
            sync(self.device)
            return out

        benchmark.extra_info.update(
            device=str(self.device),
            device_name=torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
            torch=torch.__version__,
            threads=torch.get_num_threads(),
            batch_size=batch,
            flops_per_call=flops,
            **extra,
        )
        result = benchmark(timed)
        stats = getattr(benchmark, "stats", None)
        if stats is not None and not self.disabled:
            median = stats.stats.median
            benchmark.extra_info["gflops"] = flops / median / 1e9 if median > 0 else None
        return result


@pytest.fixture(scope="session")
def device(request) -> torch.device:
    from lab.context import resolve_device

    return resolve_device(request.config.getoption("--bench-device"))


@pytest.fixture
def perf(request, device) -> Perf:
    return Perf(request.config, device)


def mlp_flops(widths, batch: int, backward: bool) -> float:
    """Multiply-adds of the linear layers x2 (forward); a backward pass costs twice the forward."""
    macs = sum(a * b for a, b in zip(widths[:-1], widths[1:])) * batch
    return 2.0 * macs * (3 if backward else 1)
