"""The config: presets load with the values they promise, and every mistake a user can make in a
YAML file or an override is refused with a message naming the file, the dotted key and the fix."""

import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError

from tasks.config import CONFIG_DIR, PRESETS, ConfigError, config_path, load_config
from tasks.schema import SECTIONS, Config, SamplingConfig, TrainingConfig


def write(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(path, overrides=()) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, overrides)
    message = str(caught.value)
    assert "errors.pydantic.dev" not in message
    assert all(line.startswith(f"{caught.value.file}: ") for line in message.splitlines())
    return caught.value.problems


# ---------------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------------


def test_default_preset_is_the_nightly_workload():
    config = load_config("default")
    assert config.policy.base == "qwen2.5-coder-0.5b-instruct"
    assert config.policy.dtype == "bfloat16"
    assert config.run.cycles == 1
    assert (config.problems.train, config.problems.train_n) == ("mbpp", 128)  # a night on 2 cores
    assert (config.problems.dev, config.problems.dev_n) == ("mbpp", 100)
    assert (config.problems.test, config.problems.test_n) == ("humaneval", None)
    assert [a.name for a in config.sampling.agents] == ["A", "B"]
    assert [(s.name, s.temperature) for s in config.sampling.specialists] == [
        ("plain", 0.8), ("logical", 0.6), ("creative", 1.0), ("careful", 0.8)]
    # one specialist writes in the evaluation format: no instruction, no retrieved examples
    assert (config.sampling.specialists[0].system_prompt,
            config.sampling.specialists[0].retrieval) == ("", False)
    assert config.sampling.samples_per_specialist == 2
    assert config.sampling.max_new_tokens == 384
    assert config.debug.max_turns == 2
    assert (config.evaluation.n_samples, config.evaluation.promote) == (4, "significant")
    assert config.explore.adapt and config.sandbox.held_out == 0.34
    assert config.training.dpo["learning_rate"] == 2e-4  # a float, not the string "2.0e-4"


def test_default_preset_spells_out_the_built_in_defaults():
    """default.yaml differs from `Config()` only where the brief says it does."""
    from_file = load_config("default").model_dump()
    built_in = Config().model_dump()
    built_in["sampling"]["samples_per_specialist"] = 2
    built_in["problems"].update(train_n=128, train_seed=0)
    # the nightly default writes in the instruct model's chat format; the schema's default stays
    # completion, the format of the tiny test model
    for specialist in built_in["sampling"]["specialists"]:
        specialist["prompt_style"] = "chat"
    assert from_file == built_in


def test_smoke_preset_is_small():
    config = load_config("smoke")
    assert config.policy.base == "qwen2.5-coder-0.5b-instruct"
    assert (config.problems.train_n, config.problems.train_seed) == (6, 0)
    assert (config.problems.dev_n, config.problems.test_n, config.problems.test_seed) == (8, 8, 0)
    assert len(config.sampling.agents) == 2
    assert [(s.name, s.temperature) for s in config.sampling.specialists] == [
        ("logical", 0.3), ("creative", 0.7)]
    assert config.sampling.samples_per_specialist == 1
    assert config.sampling.max_new_tokens == 192
    assert config.debug.max_turns == 1
    assert config.training.dpo["num_train_epochs"] == 1
    assert config.training.dpo["max_length"] == 512
    assert config.training.dpo["learning_rate"] == 2e-4  # merged over the defaults
    assert config.evaluation.n_samples == 0


def test_tiny_preset_is_for_tests():
    config = load_config("tiny")
    assert (config.policy.base, config.policy.dtype) == ("tiny", "float32")
    assert (config.problems.train_n, config.problems.dev_n, config.problems.test_n) == (4, 3, 3)
    assert config.problems.near_duplicate is None
    assert len(config.sampling.specialists) == 2
    assert (config.sampling.max_new_tokens, config.sampling.batch_size) == (32, 4)
    assert config.debug.max_turns == 1
    assert config.memory.top_k == 1
    assert (config.training.lora_r, config.training.lora_alpha) == (4, 8)
    assert config.training.dpo["max_length"] == 256
    assert config.training.dpo["learning_rate"] == pytest.approx(1e-3)
    assert (config.evaluation.n_samples, config.evaluation.k) == (2, [1, 2])


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_starts_with_a_comment_saying_what_it_is_for(name):
    first = config_path(name).read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith(f"# {name}:")


def test_config_path_finds_presets_and_paths(tmp_path):
    assert config_path("smoke") == CONFIG_DIR / "smoke.yaml"
    mine = write(tmp_path, "run: {cycles: 2}\n")
    assert config_path(str(mine)) == mine
    assert load_config(mine).run.cycles == 2


def test_config_path_of_a_missing_file_lists_the_presets(tmp_path):
    with pytest.raises(ConfigError) as caught:
        config_path(str(tmp_path / "nightly.yaml"))
    message = str(caught.value)
    assert "nightly.yaml" in message and "does not exist" in message
    assert "default, smoke, tiny, efficacy, codeio" in message


# ---------------------------------------------------------------------------------------------
# Files that are not configs
# ---------------------------------------------------------------------------------------------


def test_an_empty_file_means_all_defaults(tmp_path):
    assert load_config(write(tmp_path, "")) == Config()


def test_a_file_that_is_not_yaml_or_not_a_mapping(tmp_path):
    broken = write(tmp_path, "sampling: [\n", "broken.yaml")
    assert problems_of(broken)[0].startswith("not valid YAML")
    listed = write(tmp_path, "- run\n- sampling\n", "list.yaml")
    assert "top level is a list, not a mapping of sections" in problems_of(listed)[0]


def test_a_duplicate_key_is_refused_not_silently_overwritten(tmp_path):
    path = write(tmp_path, """\
        sampling:
          top_p: 0.9
          top_p: 0.5
        """)
    [problem] = problems_of(path)
    assert "duplicate key 'top_p'" in problem and "line 2" in problem


def test_an_emptied_section_takes_its_defaults(tmp_path):
    path = write(tmp_path, """\
        memory:
          # top_k: 4
        """)
    assert load_config(path).memory == Config().memory


# ---------------------------------------------------------------------------------------------
# Unknown keys and bad values
# ---------------------------------------------------------------------------------------------


def test_unknown_keys_are_named_by_dotted_path_and_file(tmp_path):
    path = write(tmp_path, """\
        sampling:
          temprature: 0.5
          max_new_token: 100
          specialists:
            - {name: logical, temperature: 0.3, system_prompt: Be logical.}
            - {name: creative, temperature: 0.7, system_prompt: Be creative., colour: red}
        traning: {lora_r: 8}
        """)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert f"{path}: unknown key 'sampling.temprature' (sampling takes: agents," in message
    assert "unknown key 'sampling.max_new_token' (did you mean 'sampling.max_new_tokens'?)" \
        in message
    assert f"{path}: unknown key 'sampling.specialists.1.colour'" in message
    assert "unknown key 'traning' (did you mean 'training'?)" in message


def test_bad_values_name_the_path_the_bound_and_the_value(tmp_path):
    path = write(tmp_path, """\
        sampling:
          top_p: 0
          specialists:
            - {name: logical, temperature: 0.3, system_prompt: Be logical.}
            - {name: creative, temperature: 3.5, system_prompt: Be creative.}
        policy: {dtype: fp16}
        run: {cycles: "2"}
        """, "x.yaml")
    problems = problems_of(path)
    assert ("sampling.specialists.1.temperature: Input should be less than or equal to 2 "
            "(got 3.5)") in problems
    assert "sampling.top_p: Input should be greater than 0 (got 0)" in problems
    assert "policy.dtype: Input should be 'bfloat16' or 'float32' (got 'fp16')" in problems
    assert "run.cycles: Input should be a valid integer (got '2')" in problems
    assert str(path) in str(ConfigError(str(path), problems))


def test_a_missing_required_key_in_a_list_item(tmp_path):
    path = write(tmp_path, "sampling: {agents: [{name: A, policy: current}]}\n")
    assert problems_of(path) == ["sampling.agents.0.seed: required, but missing"]


def test_problem_suites_are_names_or_jsonl_paths(tmp_path):
    assert load_config(write(tmp_path, "problems: {train: MBPP, test: mine.jsonl}\n")) \
        .problems.train == "mbpp"
    [problem] = problems_of(write(tmp_path, "problems: {train: mbpp.json}\n", "b.yaml"))
    assert problem.startswith("problems.train: suite 'mbpp.json' is not a problem suite")
    [problem] = problems_of(write(tmp_path, "problems: {train: humaneval}\n", "c.yaml"))
    assert problem.startswith("problems.test: 'humaneval' is also the train suite")
    [problem] = problems_of(write(tmp_path, "problems: {dev: humaneval}\n", "d.yaml"))
    assert problem.startswith("problems.test: 'humaneval' is also the dev suite")


def test_evaluation_k_must_fit_n_samples(tmp_path):
    [problem] = problems_of(write(tmp_path, "evaluation: {n_samples: 2, k: [1, 5]}\n"))
    assert problem.startswith("evaluation.k: [5] out of range")
    assert load_config(write(tmp_path, "evaluation: {n_samples: 4, k: [4, 1, 1]}\n",
                             "ok.yaml")).evaluation.k == [1, 4]


# ---------------------------------------------------------------------------------------------
# Agents and specialists
# ---------------------------------------------------------------------------------------------


def test_duplicate_specialist_names_are_refused(tmp_path):
    path = write(tmp_path, """\
        sampling:
          specialists:
            - {name: logical, temperature: 0.3, system_prompt: Be logical.}
            - {name: logical, temperature: 0.7, system_prompt: Be creative.}
        """)
    [problem] = problems_of(path)
    assert problem.startswith("sampling.specialists: two specialists are named 'logical'")


def test_agents_need_unique_names_and_seeds_and_at_least_one_exists():
    with pytest.raises(ValidationError, match="two agents are named 'A'"):
        SamplingConfig(agents=[{"name": "A", "policy": "current", "seed": 0},
                               {"name": "A", "policy": "best", "seed": 1}])
    with pytest.raises(ValidationError, match="both use seed 0"):
        SamplingConfig(agents=[{"name": "A", "policy": "current", "seed": 0},
                               {"name": "B", "policy": "best", "seed": 0}])
    with pytest.raises(ValidationError, match="no specialists"):
        SamplingConfig(specialists=[])


# ---------------------------------------------------------------------------------------------
# Training: what is ours is not passed through
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key, points_to", [
    ("rpo_alpha", "removed in trl ≥0.29; use training.sft_weight"),
    ("loss_type", "set from training.dpo_weight and training.sft_weight"),
    ("output_dir", "run store"),
])
def test_dpo_refuses_keys_we_set_and_names_our_field(tmp_path, key, points_to):
    path = write(tmp_path, f"training: {{dpo: {{{key}: 1, beta: 0.2}}}}\n")
    [problem] = problems_of(path)
    assert problem.startswith(f"training.dpo: {key!r} may not be set here")
    assert points_to in problem


def test_sft_weight_decides_the_trl_loss():
    dual = TrainingConfig(sft_weight=0.5).dpo_kwargs()
    assert (dual["loss_type"], dual["loss_weights"]) == (["sigmoid", "sft"], [1.0, 0.5])
    plain = TrainingConfig(sft_weight=0).dpo_kwargs()
    assert plain["loss_type"] == ["sigmoid"] and "loss_weights" not in plain
    assert TrainingConfig(checkpoint_steps=7).dpo_kwargs()["save_steps"] == 7


def test_dpo_weight_zero_trains_the_sft_term_alone_and_both_zero_is_refused(tmp_path):
    sft_only = TrainingConfig(dpo_weight=0, sft_weight=1.0).dpo_kwargs()
    assert sft_only["loss_type"] == ["sft"] and "loss_weights" not in sft_only
    weighted = TrainingConfig(dpo_weight=0.5, sft_weight=1.0).dpo_kwargs()
    assert (weighted["loss_type"], weighted["loss_weights"]) == (["sigmoid", "sft"], [0.5, 1.0])
    [problem] = problems_of(write(tmp_path, "training: {dpo_weight: 0, sft_weight: 0}\n"))
    assert "both 0" in problem and "set either above 0" in problem


def test_dpo_keys_merge_over_the_defaults(tmp_path):
    dpo = load_config(write(tmp_path, "training: {dpo: {beta: 0.3}}\n")).training.dpo
    assert dpo["beta"] == 0.3
    assert dpo["learning_rate"] == 2e-4  # not trl's 1e-6


def test_sections_are_checked_against_each_other(tmp_path):
    path = write(tmp_path, """\
        sampling: {max_new_tokens: 512}
        training: {sft_weight: 0, dpo: {max_length: 256}}
        pairs: {keep_sft: true}
        """)
    problems = problems_of(path)
    assert any(p.startswith("training.dpo.max_length (256) must exceed "
                            "sampling.max_new_tokens (512)") for p in problems)
    assert any(p.startswith("pairs.keep_sft is true but training.sft_weight is 0")
               for p in problems)


# ---------------------------------------------------------------------------------------------
# Overrides
# ---------------------------------------------------------------------------------------------


def test_overrides_set_values_in_sections_mappings_and_lists():
    config = load_config("tiny", [
        "sampling.top_p=0.5",
        "problems.train_n=null",
        "training.dpo.beta=0.25",
        "sampling.specialists.1.temperature=0.9",
        "evaluation.k=[2]",
        "run.store=/tmp/somewhere",
    ])
    assert config.sampling.top_p == 0.5
    assert config.problems.train_n is None
    assert config.training.dpo["beta"] == 0.25
    assert config.training.dpo["max_length"] == 256  # the rest of tiny's dpo is kept
    assert config.sampling.specialists[1].temperature == 0.9
    assert config.evaluation.k == [2]
    assert config.run.store_dir() == Path("/tmp/somewhere")


def test_an_override_reaches_into_a_list_the_file_does_not_set(tmp_path):
    config = load_config(write(tmp_path, ""), ["sampling.specialists.3.temperature=0.1"])
    assert [s.temperature for s in config.sampling.specialists] == [0.8, 0.6, 1.0, 0.1]


def test_a_bad_override_value_names_the_override(tmp_path):
    [problem] = problems_of("tiny", ["sampling.top_p=2"])
    assert problem == ("sampling.top_p: Input should be less than or equal to 1 (got 2) "
                       "[from override 'sampling.top_p=2']")
    [problem] = problems_of("tiny", ["sampling.temprature=0.5"])
    assert problem.startswith("unknown key 'sampling.temprature'")


@pytest.mark.parametrize("override, says", [
    ("sampling.top_p", "expected SECTION.KEY=VALUE"),
    ("sampling=1", "expected SECTION.KEY=VALUE"),
    ("sampling..top_p=1", "expected SECTION.KEY=VALUE"),
    ("sampling.top_p=[", "the value '[' is not valid YAML"),
    ("sampling.specialists.7.temperature=1", "'7' is not an index in it (0 to 1)"),
    ("run.name.x=1", "run.name is a string, not a section"),
])
def test_bad_override_syntax_is_a_clear_error(override, says):
    [problem] = problems_of("tiny", [override])
    assert problem.startswith(f"override {override!r}: ")
    assert says in problem


# ---------------------------------------------------------------------------------------------
# Hashes
# ---------------------------------------------------------------------------------------------


def test_section_hash_follows_only_its_own_section():
    base = load_config("tiny")
    changed = load_config("tiny", ["sampling.top_p=0.5"])
    assert changed.section_hash("sampling") != base.section_hash("sampling")
    for name in SECTIONS:
        if name != "sampling":
            assert changed.section_hash(name) == base.section_hash(name), name
    assert changed.hash() != base.hash()
    assert load_config("tiny").hash() == base.hash()
    assert len(base.section_hash("training")) == 16
    # where the run is stored is not part of what it is
    assert load_config("tiny", ["run.store=/elsewhere"]).hash() == base.hash()


def test_section_hash_of_an_unknown_section():
    with pytest.raises(ValueError, match="the sections are run, problems"):
        Config().section_hash("sampler")


def test_a_config_is_immutable():
    config = Config()
    with pytest.raises(ValidationError):
        config.sampling.top_p = 0.5


# ---------------------------------------------------------------------------------------------
# Sandbox limits
# ---------------------------------------------------------------------------------------------


def test_sandbox_section_gives_engine_limits():
    from sandbox.engine import Limits
    from tasks.execution import sandbox_limits

    config = load_config("default", ["sandbox.workers=3", "sandbox.memory_mb=512"])
    assert sandbox_limits(config.sandbox) == Limits(workers=3, memory_mb=512)
    assert sandbox_limits(Config().sandbox).workers == Limits().workers  # None: one per core
    # the schema states the sandbox's defaults without importing it (its stages' cache keys
    # would otherwise depend on the whole sandbox): they must stay equal
    from sandbox import DEFAULT_TIMEOUT_S

    assert Config().sandbox.memory_mb == Limits().memory_mb
    assert Config().sandbox.timeout_s == DEFAULT_TIMEOUT_S


def test_specialists_of_two_formats_need_the_evaluation_format_named():
    both = ["sampling.specialists=[{name: a, temperature: 0.5, system_prompt: '', "
            "prompt_style: chat}, {name: b, temperature: 0.5, system_prompt: ''}]"]
    with pytest.raises(ValueError, match="set evaluation.prompt_style"):
        load_config("tiny", both)
    named = load_config("tiny", both + ["evaluation.prompt_style=chat"])
    assert named.evaluation.prompt_style == "chat"
