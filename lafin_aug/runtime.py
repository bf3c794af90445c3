"""What every stage needs at run time: device, precision, autocast, ranks, random states.

Training, generation, evaluation and the benchmark all take these from here, so a run-time stage
never needs the training code.

Precision: "auto" (the default everywhere) resolves to bf16 where the hardware runs it natively
(a CUDA device that supports bf16; a CPU with AVX512-BF16 or AMX-BF16) and fp32 elsewhere. On a
CPU without native bf16, torch emulates bf16 matmuls and convolutions hundreds of times slower
than fp32 (0.3 against 121 GFLOP/s measured on an AVX2 AMD EPYC), so an explicit "bf16" there
warns once.
"""
from __future__ import annotations

import contextlib
import logging
import os
import warnings
from typing import Any, Iterable

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda")
_warned_slow_bf16 = False


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """`auto` picks CUDA when present, else CPU; under torchrun each rank takes its local GPU."""
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda asked for, but torch sees no CUDA device")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if name != "cpu":
        raise ValueError(f"unknown device {name!r} (one of {', '.join(DEVICES)})")
    return torch.device("cpu")


def cpu_capability() -> str:
    """The CPU's vector ISA as torch dispatches to it (e.g. AVX2, AVX512), plus native bf16 support."""
    base = torch.backends.cpu.get_cpu_capability()
    return f"{base}, native bf16: {'yes' if cpu_native_bf16() else 'no'}"


def cpu_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX-BF16)."""
    try:
        capabilities = torch.cpu.get_capabilities()
    except (AttributeError, RuntimeError):  # older torch: no way to tell, so assume not
        return False
    return bool(capabilities.get("avx512_bf16") or capabilities.get("amx_bf16"))


def native_bf16(device: torch.device) -> bool:
    """Whether `device` runs bf16 at least as fast as fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_native_bf16()


def resolve_precision(precision: str, device: torch.device) -> str:
    """fp32 or bf16 for `precision` in {auto, fp32, bf16} on `device` (see the module docstring)."""
    global _warned_slow_bf16
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r} (one of {', '.join(PRECISIONS)})")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if precision == "bf16" and not native_bf16(device) and not _warned_slow_bf16:
        _warned_slow_bf16 = True
        warnings.warn(f"bf16 asked for on a {device.type} without native bf16 "
                      f"({cpu_capability() if device.type == 'cpu' else device}): it will run far slower "
                      f"than fp32; --precision auto picks fp32 here", RuntimeWarning, stacklevel=2)
    return precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed-precision context for a resolved `precision` (fp32 or bf16)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    raise ValueError(f"precision {precision!r} is not resolved (fp32 or bf16; resolve 'auto' first)")


def distributed() -> tuple[int, int]:
    """(rank, world size): an initialised torch.distributed group, else torchrun's RANK/WORLD_SIZE, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def init_distributed(device: torch.device) -> tuple[int, int]:
    """`distributed()`, first starting the process group when launched by torchrun (WORLD_SIZE > 1)."""
    if int(os.environ.get("WORLD_SIZE", 1)) > 1 and not dist.is_initialized():
        if device.type == "cuda":  # NCCL's own buffers and barriers go to the current device: this rank's GPU
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return distributed()


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Average the gradients of `parameters` over the ranks of the initialised process group, in one
    all-reduce (as DDP does, for networks trained stage by stage outside it); a missing gradient counts
    as zeros. Parameters that do not require gradients are skipped. No-op in a single process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    params = [p for p in parameters if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for p in params:
        p.grad.copy_(flat[offset:offset + p.numel()].view_as(p.grad))
        offset += p.numel()


def capture_rng() -> dict[str, Any]:
    """Torch RNG states (CPU and CUDA) as tensors."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Undo `capture_rng`."""
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
