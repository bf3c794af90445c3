"""Run-time layer: precision that fits the machine, devices, ranks; what `import lafin_aug.data` loads."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings

import pytest
import torch

from lafin_aug import runtime
from lafin_aug.runtime import autocast, distributed, resolve_device, resolve_precision

NATIVE = {"avx2": True, "avx512_f": True, "avx512_bf16": True, "amx_bf16": False}
EMULATED = {"avx2": True, "avx512_f": False, "avx512_bf16": False, "amx_bf16": False}  # e.g. AMD EPYC Zen 3


@pytest.fixture
def cpu_with(monkeypatch):
    """Pretend the CPU reports the given capabilities; the slow-bf16 warning may fire again."""
    def pretend(capabilities: dict[str, bool]) -> None:
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
        monkeypatch.setattr(runtime, "_warned_slow_bf16", False)
    return pretend


def test_auto_takes_bf16_only_where_the_cpu_computes_it_natively(cpu_with):
    cpu = torch.device("cpu")
    cpu_with(NATIVE)
    assert resolve_precision("auto", cpu) == "bf16"
    cpu_with({**EMULATED, "amx_bf16": True})
    assert resolve_precision("auto", cpu) == "bf16"
    cpu_with(EMULATED)
    assert resolve_precision("auto", cpu) == "fp32"
    assert "native bf16: no" in runtime.cpu_capability()


def test_explicit_bf16_on_an_emulating_cpu_warns_once(cpu_with):
    cpu_with(EMULATED)
    with pytest.warns(RuntimeWarning, match="far slower than fp32; --precision auto picks fp32 here"):
        assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_precision("bf16", torch.device("cpu")) == "bf16"  # no second warning
        cpu_with(NATIVE)
        assert resolve_precision("bf16", torch.device("cpu")) == "bf16"  # native: no warning at all
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"


def test_unknown_or_unresolved_precision_is_an_error():
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        resolve_precision("fp16", torch.device("cpu"))
    with pytest.raises(ValueError, match="resolve 'auto' first"):
        autocast(torch.device("cpu"), "auto")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        resolve_device("tpu")


def test_rank_and_world_come_from_one_place(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed() == (0, 1)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert distributed() == (3, 4)


def _modules_after(statement: str, prefix: str = "lafin_aug") -> list[str]:
    """Modules under `prefix` loaded by `statement` in a fresh interpreter."""
    code = (f"import sys, json; {statement}; "
            f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({prefix!r}))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.splitlines()[-1])


def test_importing_the_data_package_loads_no_model_or_trainer():
    loaded = _modules_after("import lafin_aug.data")
    assert "lafin_aug.data.wflw" in loaded
    allowed = ("lafin_aug", "lafin_aug.registry", "lafin_aug.landmarks")  # readers declare their schema
    assert all(m in allowed or m.startswith("lafin_aug.data") for m in loaded), loaded
    assert _modules_after("import lafin_aug.data", prefix="torch") == []


@pytest.mark.parametrize("statement", ["import lafin_aug.generate", "import lafin_aug.evaluate",
                                       "from lafin_aug import OnTheFlyAugment", "import lafin_aug.cli.models"])
def test_run_time_stages_never_import_training_code(statement):
    loaded = _modules_after(statement)
    assert not [m for m in loaded if "train" in m], loaded


def test_the_bench_imports_the_detector_trainer_but_no_inpainter_trainer():
    loaded = _modules_after("import lafin_aug.bench")
    assert "lafin_aug.detectors.trainer" in loaded  # retraining detectors is what the bench does
    assert not [m for m in loaded if m.startswith("lafin_aug.inpainters") and "train" in m], loaded
