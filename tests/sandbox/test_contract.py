"""The sandbox contract from the outside: the JSONL CLI, bad input, a missing engine, and the
isolation settings of the container itself."""

import json
import subprocess
import sys

import pytest

from sandbox import RequestError, Verdict, read_requests
from sandbox.contract import verdict_from_json
from sandbox.engine import RUNNER_CAPABILITIES, RUNNER_IN_CONTAINER, Sandbox, SandboxError

GOOD = {"id": "a", "code": "def add(a, b):\n    return a + b\n",
        "tests": "def check(candidate):\n    assert candidate(1, 2) == 3\n", "entry_point": "add"}


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("bad, message", [
    ("{not json", "not valid JSON"),
    ([1, 2], "must be a JSON object"),
    ({**GOOD, "code": 3}, "field 'code' must be a string"),
    ({k: v for k, v in GOOD.items() if k != "tests"}, "missing field 'tests'"),
    ({**GOOD, "extra": 1}, "unknown field(s) ['extra']"),
    ({**GOOD, "timeout_s": -1}, "field 'timeout_s'"),
    ({**GOOD, "entry_point": "not an identifier"}, "field 'entry_point'"),
    ({**GOOD, "tests": "def check(candidate):\n    pass\n"}, "contains no assert"),
    ({**GOOD, "tests": "assert True\n"}, "must define a function check(candidate)"),
    ({**GOOD, "tests": "def check(:\n"}, "not valid Python"),
    ({**GOOD, "held_out": 1}, "field 'held_out' must be a fraction of the test cases in [0, 1)"),
    ({**GOOD, "held_out": 1.5}, "field 'held_out'"),
    ({**GOOD, "held_out": -0.1}, "field 'held_out'"),
    ({**GOOD, "held_out": "0.2"}, "field 'held_out'"),
    ({**GOOD, "held_out": True}, "field 'held_out'"),
    ({**GOOD, "shown": 0}, "field 'shown' must be a list of test case (assert site) indices"),
    ({**GOOD, "shown": [-1]}, "field 'shown'"),
    ({**GOOD, "shown": [True]}, "field 'shown'"),
    ({**GOOD, "shown": ["0"]}, "field 'shown'"),
])
def test_malformed_request_line_is_named(tmp_path, bad, message):
    path = _write(tmp_path / "requests.jsonl", [GOOD, bad])
    with pytest.raises(RequestError) as info:
        read_requests(path)
    assert f"{path}:2" in str(info.value)
    assert message in str(info.value)


def test_held_out_is_optional_and_kept(tmp_path):
    path = _write(tmp_path / "requests.jsonl", [GOOD, {**GOOD, "id": "b", "held_out": 0.25}])
    first, second = read_requests(path)
    assert (first.held_out, second.held_out) == (0.0, 0.25)
    assert json.loads(second.to_json())["held_out"] == 0.25


def test_shown_is_optional_and_kept(tmp_path):
    path = _write(tmp_path / "requests.jsonl", [GOOD, {**GOOD, "id": "b", "shown": [0, 2]}])
    first, second = read_requests(path)
    assert (first.shown, second.shown) == ((), (0, 2))
    assert json.loads(second.to_json())["shown"] == [0, 2]


def test_verdict_carries_held_out_counts():
    line = json.dumps({"id": "a", "status": "failed", "passed": 2, "total": 3, "feedback": "",
                       "duration_s": 0.1, "held_out_passed": 0, "held_out_total": 1})
    verdict = verdict_from_json(line)
    assert (verdict.held_out_passed, verdict.held_out_total) == (0, 1)
    assert verdict.held_out_reward == 0.0 and verdict.reward == pytest.approx(2 / 3)
    assert verdict_from_json(verdict.to_json()) == verdict
    # no held-out cases: the held-out reward is the reward over every case
    plain = Verdict("b", "failed", 1, 4, "", 0.1)
    assert (plain.held_out_passed, plain.held_out_total) == (0, 0)
    assert plain.held_out_reward == plain.reward == 0.25


def test_cli_exec_malformed_line_exits_2_and_writes_nothing(tmp_path):
    path = _write(tmp_path / "requests.jsonl", [GOOD, "{oops"])
    out = tmp_path / "verdicts.jsonl"
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "sandbox", "exec", str(path),
                           "-o", str(out)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "requests.jsonl:2" in proc.stderr
    assert not out.exists()


@pytest.mark.docker
def test_cli_exec_writes_one_verdict_per_request_in_order(tmp_path):
    rows = [{**GOOD, "id": f"r{i}", "code": GOOD["code"] if i % 2 else "def add(a, b):\n  return 0\n"}
            for i in range(6)]
    path = _write(tmp_path / "requests.jsonl", rows)
    out = tmp_path / "verdicts.jsonl"
    proc = subprocess.run([sys.executable, "-m", "flows.cli", "sandbox", "exec", str(path),
                           "-o", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    verdicts = [json.loads(line) for line in out.read_text().splitlines()]
    assert [v["id"] for v in verdicts] == [f"r{i}" for i in range(6)]
    assert [v["status"] for v in verdicts] == ["failed", "passed"] * 3
    assert set(verdicts[0]) == {"id", "status", "passed", "total", "feedback", "duration_s",
                                "held_out_passed", "held_out_total"}
    assert "passed" in proc.stderr and "6" in proc.stderr


def test_no_docker_engine_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/nothing-here.sock")
    with pytest.raises(SandboxError) as info:
        Sandbox().start()
    assert "No Docker engine answers" in str(info.value)
    assert "make setup" in str(info.value)


@pytest.mark.docker
def test_container_is_locked_down(sandbox):
    sandbox._ensure_running()
    attrs = sandbox.client.api.inspect_container(sandbox.container.id)
    host = attrs["HostConfig"]
    assert host["NetworkMode"] == "none"
    assert host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"]
    # only what the root runner needs to confine candidates, who drop them all
    assert sorted(c.removeprefix("CAP_") for c in host["CapAdd"]) == sorted(RUNNER_CAPABILITIES)
    assert "no-new-privileges" in host["SecurityOpt"]
    assert host["Memory"] > 0 and host["PidsLimit"] > 0 and host["NanoCpus"] > 0
    assert "size=" in host["Tmpfs"]["/tmp"] and "mode=0700" in host["Tmpfs"]["/tmp"]
    mounts = attrs["Mounts"]
    assert len(mounts) == 1
    assert mounts[0]["Destination"] == RUNNER_IN_CONTAINER and mounts[0]["RW"] is False
    assert not any(e.startswith("AUTODIDACT") for e in attrs["Config"]["Env"] or [])
