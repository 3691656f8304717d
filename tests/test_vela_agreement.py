"""Differential tests: the Ethos-U profiles' verdicts against Arm's Vela compiling the same models
for each profile's accelerator (ethos-u55-128, ethos-u65-256, ethos-u85-256).

Every probe model (pea_deploy/agreement/probe_models.py: 241 single-op int8/int16 TFLite models over
kernel, stride, padding, dilation, depth multiplier, resize factor, dtype, rank, batch and fused or
standalone activations) is compiled by Vela; pea-verify-ops must never pass a model Vela leaves on
the CPU, and with Vela deciding the limits may reject only by pea-deploy's ReLU policy."""

import subprocess
import sys

import pytest

pytest.importorskip("ethosu", reason="Vela (pea-deploy[vela]) is not installed")

from pea_deploy.verify import load_profile  # noqa: E402
from pea_deploy.agreement.probe_models import ProbeCase, probe_cases, write_probe  # noqa: E402
from pea_deploy.agreement.probe_networks import network_probes  # noqa: E402
from pea_deploy.agreement.vela import run_agreement, summary_row  # noqa: E402

CAN_CONVERT = __import__("importlib").util.find_spec("litert_torch") is not None


ETHOS_U = ["ethos-u55", "ethos-u65", "ethos-u85"]


@pytest.fixture(scope="module", params=ETHOS_U)
def profile(request):
    return load_profile(request.param)


@pytest.fixture(scope="module")
def cases():
    """The single-op probes and, with pea-deploy[tflite], the multi-op networks converted once into
    a directory every profile's run reads (the conversion is the slow part)."""
    return probe_cases() + (network_probes() if CAN_CONVERT else [])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("probes")


def test_at_least_100_generated_cases(cases):
    assert len(cases) >= 100 and len({c.name for c in cases}) == len(cases)
    assert not CAN_CONVERT or len(cases) - len(probe_cases()) >= 10   # multi-op networks included


def test_with_vela_deciding_limits_only_policy_disagrees(profile, cases, workdir):
    results = run_agreement(profile, workdir, compiler=True, cases=cases)
    row = summary_row(profile.name, results)
    wrong = [(r.outcome, r.case.name, r.vela_reason, r.our_findings) for r in results
             if r.outcome in ("false accept", "false reject")]
    assert not wrong, wrong
    assert row["policy reject"] > 0  # the probes include GELU, LOGISTIC, ...: the policy is exercised


def test_profile_limits_alone_never_accept_what_vela_puts_on_the_cpu(profile, cases, workdir):
    results = run_agreement(profile, workdir, compiler=False, cases=cases)
    accepted_wrongly = [r.case.name for r in results if r.outcome == "false accept"]
    assert not accepted_wrongly
    # and the fallback is an approximation: some models Vela's rewrites place on the NPU are rejected
    assert any(r.outcome == "false reject" for r in results)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pea_deploy.cli.verify_ops", *args], capture_output=True, text=True)


def test_cli_asks_vela_in_a_child_process(tmp_path):
    """The real path (a Vela child process, no cache shared with this test): a stride-3 transpose
    conv is refused with Vela's own reason; AlexNet's 11x11/4 VALID conv passes with Vela and is
    refused by the profile's limits alone."""
    tconv = write_probe(ProbeCase("TRANSPOSE_CONV", size=(8, 8), stride=(3, 3)), tmp_path / "tconv.tflite")
    done = _cli("--target", "ethos-u55", str(tconv))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "places it on the CPU" in done.stdout and "stride" in done.stdout

    stem = write_probe(ProbeCase("CONV_2D", size=(32, 32), kernel=(11, 11), stride=(4, 4), padding="VALID"),
                       tmp_path / "alexnet_stem.tflite")
    assert _cli("--target", "ethos-u55", str(stem)).returncode == 0
    refused = _cli("--target", "ethos-u55", "--no-compiler", str(stem))
    assert refused.returncode == 1 and "limit" in refused.stdout
