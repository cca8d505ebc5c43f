"""Progress of the long stages (tasks/progress.py): lines at every tenth and at the end with
counts that reach the total, and engines and the sandbox that count their work without changing
it: the same completions and verdicts with a progress as without. The lines of a whole cycle,
in its task runs' logs, are checked in tests/flows/test_cycle.py."""

import io
import logging
import re

# prefect configures logging when its main module loads: before caplog's handler, not after
from prefect import get_run_logger  # noqa: F401
import pytest

from tasks.generation import Settings
from tasks.progress import LOG, Progress, duration, rate_text

LINE = re.compile(r"^(?P<what>[^:]+): (?P<done>\d+)/(?P<total>\d+) (?P<unit>\w+)")


def counts(caplog, what: str) -> list[tuple[int, int]]:
    """(done, total) of every progress line of `what`, in order."""
    out = []
    for record in caplog.records:
        match = LINE.match(record.getMessage())
        if match and match["what"] == what:
            out.append((int(match["done"]), int(match["total"])))
    return out


@pytest.fixture
def lines(caplog):
    caplog.set_level(logging.INFO, logger=LOG.name)
    return caplog


def test_a_line_at_the_start_at_every_tenth_and_at_the_end(lines):
    with Progress("sample", 37, "prompts", every_s=3600) as progress:
        for _ in range(37):
            progress.advance()
    seen = counts(lines, "sample")
    # 0, then the first count past each tenth: 4 (10.8%), 8, 12, 15, ... and 37
    assert seen[0] == (0, 37) and seen[-1] == (37, 37)
    assert [done for done, _ in seen] == [0, 4, 8, 12, 15, 19, 23, 26, 30, 34, 37]
    last = lines.records[-1].getMessage()
    assert last.startswith("sample: 37/37 prompts (100%), ") and ", done in " in last
    middle = next(r.getMessage() for r in lines.records if "19/37" in r.getMessage())
    assert re.search(r"\(51%\), [\d.]+/(s|min|h), ETA \d", middle), middle


def test_a_line_whenever_the_interval_has_passed(lines):
    with Progress("execute", 1000, "candidates", every_s=0.0) as progress:
        for _ in range(5):
            progress.advance(3)
    assert [done for done, _ in counts(lines, "execute")] == [0, 3, 6, 9, 12, 15]


def test_training_lines_carry_the_step_metrics_and_a_resumed_count(lines):
    with Progress("train", 5, "steps", done=2, every_s=3600) as progress:
        progress.report("loss 0.6931, reward accuracy 0.50, margin +0.0100", done=3)
        progress.report("loss 0.5000, reward accuracy 1.00, margin +0.2000", done=5)
    messages = [r.getMessage() for r in lines.records]
    assert messages[0] == "train: 2/5 steps (40%)"  # resumed at step 2
    assert messages[1].startswith("train: 3/5 steps (60%), ")
    assert messages[1].endswith("; loss 0.6931, reward accuracy 0.50, margin +0.0100")
    assert messages[2].startswith("train: 5/5 steps (100%), ") and len(messages) == 3


def test_found_work_grows_the_total_and_the_end_still_reaches_it(lines):
    with Progress("sample", 10, "prompts", every_s=3600) as progress:
        progress.advance(10)
        progress.grow(2)  # prompts generated again
        progress.advance(2)
    assert counts(lines, "sample")[-1] == (12, 12)


def test_an_exception_ends_the_bar_without_a_last_line(lines):
    with pytest.raises(RuntimeError):
        with Progress("execute", 10, "candidates", every_fraction=0.5,
                      every_s=3600) as progress:
            progress.advance(3)  # not a half: no line
            raise RuntimeError("the sandbox went away")
    assert counts(lines, "execute") == [(0, 10)]


def test_durations_and_rates_read_as_a_person_writes_them():
    assert [duration(s) for s in (4.6, 205, 3900)] == ["5 s", "3 min 25 s", "1 h 05 min"]
    assert [rate_text(r) for r in (1.94, 0.05, 0.001, 240.4)] == \
        ["1.9/s", "3.0/min", "3.6/h", "240/s"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_a_bar_shows_the_count_and_the_lines_stay_off_it(capsys):
    """The bar goes to stdout; a handler writing to a terminal does not repeat the lines (they
    still reach every other handler: the Prefect API's, a file's)."""
    terminal, elsewhere = _Terminal(), io.StringIO()
    on_terminal, off_terminal = logging.StreamHandler(terminal), logging.StreamHandler(elsewhere)
    root = logging.getLogger()
    root.addHandler(on_terminal)
    root.addHandler(off_terminal)
    LOG.setLevel(logging.INFO)
    try:
        with Progress("sample", 3, "prompts", bar=True) as progress:
            progress.advance(3)
        LOG.info("not a progress line")
    finally:
        root.removeHandler(on_terminal)
        root.removeHandler(off_terminal)
        LOG.setLevel(logging.NOTSET)
    assert terminal.getvalue() == "not a progress line\n"
    assert "sample: 3/3 prompts (100%)" in elsewhere.getvalue()
    assert "3/3" in capsys.readouterr().out  # tqdm's bar


# ----------------------------------------------------------------------------------------------
# The engines and the sandbox count their work, and it is the same work


@pytest.fixture(scope="module")
def tiny_backend():
    from tasks.generation import HFBackend
    from tasks.names import TINY_BASE
    from tasks.policy import base_policy, load_policy

    model, tokenizer = load_policy(base_policy(TINY_BASE), dtype="float32")
    return HFBackend(model, tokenizer)


def test_the_hf_backend_counts_prompts_and_generates_the_same(tiny_backend, lines):
    prompts = ["def add(a, b):\n", "def neg(x):\n", "def sq(x):\n", "def inc(x):\n",
               "def dec(x):\n"]
    three = Settings(temperature=0.8, n=3, max_new_tokens=6, seed=1, batch_size=4)
    two = Settings(temperature=0.7, n=2, max_new_tokens=6, seed=2, batch_size=4)
    each = [three, two, three, two, three]
    plain = tiny_backend.generate(prompts, each)
    with Progress("sample", len(prompts), "prompts", every_s=0.0) as progress:
        counted = tiny_backend.generate(prompts, each, progress=progress)
    assert counted == plain
    seen = counts(lines, "sample")
    assert seen[-1] == (5, 5) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert len(seen) >= 4  # 0, then one per batch that finished a prompt


@pytest.mark.docker
def test_judging_counts_the_verdicts_as_they_stream_back_and_gives_the_same(sandbox, tmp_path,
                                                                            lines):
    import tasks.execution as execution
    from tasks.problems.jsonl import load_jsonl
    from tasks.records import Attempt
    from tasks.schema import SandboxConfig
    from tests.toy import DEV, EVAL, TRAIN, write_suite

    rows = TRAIN + DEV + EVAL
    problems = {p.id: p for p in load_jsonl(write_suite(rows, tmp_path / "suite.jsonl"))}
    attempts = [Attempt(id=f"{pid}/{k}", problem_id=pid, cycle=1, agent="A", specialist="s",
                        sample=k, turn=0, policy_id="p", prompt=problems[pid].prompt,
                        response=f"    {body}\n",
                        code=problems[pid].program(f"    {body}\n"))
                for pid, _, _, right, wrong, _ in rows for k, body in enumerate((right, wrong))]
    cfg = SandboxConfig()
    whole = execution.judge(attempts, problems, sandbox, cfg)
    with Progress("execute", len(attempts), "candidates", every_s=0.0) as progress:
        batched = execution.judge(attempts, problems, sandbox, cfg, progress)

    def verdicts(judged):
        return [(a.id, a.status, a.passed, a.total, a.held_out_passed, a.feedback)
                for a in judged]
    assert verdicts(batched) == verdicts(whole)
    assert sum(a.ok for a in whole) == len(rows)  # every right body passes, no wrong one
    seen = counts(lines, "execute")
    assert seen[0] == (0, 16) and seen[-1] == (16, 16)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)  # counted up, never past 16


def test_the_openvino_backend_counts_finished_requests_and_generates_the_same(lines):
    """Its pipeline takes every prompt at once (a streamer is refused for more than one): the
    count comes from the pipeline's unfinished requests, read while it runs. Twice on one
    pipeline, since the counter keeps the previous call's last value until the next call's
    first step."""
    from tasks.engines import OpenVINOBackend, openvino_model
    from tasks.policy import base_policy, provision_tiny

    backend = OpenVINOBackend(openvino_model(base_policy(str(provision_tiny()))))
    backend.poll_s = 0.02
    prompts = [f"def f{i}(x):\n    \"\"\"Return x plus {i}.\"\"\"\n" for i in range(12)]
    each = [Settings(temperature=0.8, n=2, max_new_tokens=8 + 3 * (i % 5), seed=3)
            for i in range(len(prompts))]
    plain = backend.generate(prompts, each)
    for what in ("first", "second"):
        with Progress(what, len(prompts), "prompts", every_s=0.0) as progress:
            assert backend.generate(prompts, each, progress=progress) == plain
        seen = [done for done, _ in counts(lines, what)]
        assert seen[-1] == len(prompts) and seen == sorted(seen)
    assert len(counts(lines, "first")) > 2  # counted while the pipeline ran, not only at its end


def test_training_reports_every_step_and_a_resumed_one_counts_from_its_checkpoint(tmp_path,
                                                                                  lines):
    from transformers import TrainerCallback

    from tasks.config import load_config
    from tasks.names import TINY_BASE
    from tasks.policy import base_policy
    from tasks.training import train
    from tests.tasks.test_training import pairs_file

    class Kill(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.global_step >= 2:
                raise KeyboardInterrupt("killed")

    cfg = load_config("tiny", ["training.checkpoint_steps=1",
                               "training.dpo.gradient_accumulation_steps=1"])
    shard = pairs_file(tmp_path / "pairs.jsonl")
    out = tmp_path / "train"
    with pytest.raises(KeyboardInterrupt):
        train(shard.path, base_policy(TINY_BASE), cfg.training, "float32", out,
              callbacks=[Kill()])
    assert counts(lines, "train") == [(0, 4), (1, 4), (2, 4)]  # a line per step until killed
    lines.clear()
    result = train(shard.path, base_policy(TINY_BASE), cfg.training, "float32", out)
    assert result.resumed_from == "checkpoint-2"
    assert counts(lines, "train") == [(2, 4), (3, 4), (4, 4)]
    steps = [r.getMessage() for r in lines.records if "; loss " in r.getMessage()]
    assert len(steps) == 2 and steps[-1].startswith("train: 4/4 steps (100%), ")
    assert re.search(r"; loss \d+\.\d{4}, reward accuracy [01]\.\d\d, margin [+-]\d", steps[0])
