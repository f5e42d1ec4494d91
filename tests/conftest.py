"""Shared fixtures. The real data sets come from ``textgym.data.data_dir()`` (``$TEXTGYM_DATA``
or ``../shared/data``); tests that need them skip with that reason when it is absent."""
from __future__ import annotations

import os

import pytest
import torch

from textgym.data import OracleData, data_path, resolve_data
from textgym.oracle import OracleLSTM


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default="cpu",
                     help="torch device of the tests that take the `device` fixture (marked `device`): "
                          "`pytest --device cuda -m device` checks the CUDA path")
    parser.addoption("--cuda-defaults", action="store_true",
                     help="with --device cuda: keep torch's CUDA defaults (TF32 convolutions and RNNs, cuDNN's "
                          "nondeterministic algorithms) instead of IEEE float32 and deterministic kernels")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "device: runs on the torch device given by pytest's --device option")
    name = config.getoption("--device")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise pytest.UsageError(f"--device {name!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError(f"--device {name}: this machine has no CUDA device (torch.cuda.is_available() is False)")
    if config.getoption("--cuda-defaults") and dev.type != "cuda":
        raise pytest.UsageError("--cuda-defaults applies to --device cuda only")
    if dev.type == "cuda" and not config.getoption("--cuda-defaults"):
        # The device tests compare CUDA results with CPU references to float32 tolerances and
        # resumed runs with uninterrupted ones bit for bit. cuDNN rounds convolution and RNN
        # inputs to TF32 by default (about 1e-4 relative) and may pick nondeterministic
        # algorithms; these are the test session's settings, not the library's.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def pytest_collection_modifyitems(items: list) -> None:
    for item in items:
        if "device" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.device)


@pytest.fixture
def device(request: pytest.FixtureRequest) -> torch.device:
    """The torch device of pytest's ``--device`` option (cpu by default)."""
    return torch.device(request.config.getoption("--device"))


def need_data(*parts: str):
    """The path of a shared data file, or skip the test saying which file is missing."""
    p = data_path(*parts)
    if p is None:
        pytest.skip(f"data file {'/'.join(parts)} not found (set TEXTGYM_DATA or put ../shared/data beside the checkout)")
    return p


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of tiny models: faster, and it does not oversubscribe
    shared cores (use with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def oracle_data() -> OracleData:
    """The standard synthetic benchmark data (published oracle, length 20, 10,000 + 5,000 samples)."""
    need_data("oracle_lstm", "target_params.npz")
    return resolve_data("oracle")


@pytest.fixture(scope="session")
def small_oracle_data() -> OracleData:
    """A small fresh oracle (V=50, L=6) for fast learning tests."""
    return OracleData(OracleLSTM(vocab_size=50, max_length=6, seed=3), max_length=6, n_train=512, n_test=256)


class ToyScorer:
    """A deterministic probabilistic scorer for any vocabulary: logit = mean id / V * 4 - 2 over
    the valid tokens; per-prefix scores are the same statistic of each prefix."""

    is_probabilistic = True
    supports_prefixes = True

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size

    def score_prefixes(self, tokens, lengths=None):
        T, dev = tokens.shape[1], tokens.device
        valid = torch.ones_like(tokens, dtype=torch.bool) if lengths is None else (
            torch.arange(T, device=dev) < lengths[:, None])
        x = torch.where(valid, tokens, torch.zeros_like(tokens)).float()
        counts = torch.arange(1, T + 1, device=dev).float()
        return x.cumsum(1) / counts / self.vocab_size * 4 - 2

    def score(self, tokens, lengths=None):
        s = self.score_prefixes(tokens, lengths)
        idx = (torch.full((tokens.shape[0],), tokens.shape[1], device=tokens.device) if lengths is None else lengths) - 1
        return s.gather(1, idx[:, None]).squeeze(1)


@pytest.fixture
def toy_scorer():
    return ToyScorer
