"""Shared fixtures. Tests that need Docker use the session-wide `sandbox` fixture: one container
for the whole session. There is no skip: without an engine the tests fail and say how to get one."""

import pytest


@pytest.fixture(scope="session")
def sandbox():
    from sandbox import Limits, Sandbox, SandboxError

    box = Sandbox(Limits(workers=2))
    try:
        box.start()
    except SandboxError as exc:
        pytest.fail(f"the Docker sandbox is not available: {exc}")
    yield box
    box.close()


@pytest.fixture(scope="session")
def prefect_api():
    """One Prefect test API for the whole session (it takes ~15 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def toy(tmp_path_factory):
    """The toy world of tests/toy.py: problem files and a taught tiny model (trained once per
    session), plus a config file using them."""
    import yaml

    from tasks.config import load_config
    from tasks.policy import provision_tiny
    from tests.toy import DEV, EVAL, TRAIN, teach, write_suite

    root = tmp_path_factory.mktemp("toy")
    tiny = load_config("tiny")
    model = teach(provision_tiny(), root / "model",
                  [s.system_prompt for s in tiny.sampling.specialists])
    config = tiny.model_dump(mode="json")
    config["policy"]["base"] = str(model)
    config["problems"] = {"train": str(write_suite(TRAIN, root / "train.jsonl")),
                          "dev": str(write_suite(DEV, root / "dev.jsonl")), "dev_n": len(DEV),
                          "test": str(write_suite(EVAL, root / "test.jsonl")),
                          "near_duplicate": None}
    config["evaluation"] = {"n_samples": 2, "k": [1, 2]}
    config["training"]["checkpoint_steps"] = 1
    config["training"]["dpo"]["gradient_accumulation_steps"] = 1
    (root / "toy.yaml").write_text(yaml.safe_dump(config))
    return root


@pytest.fixture(scope="session")
def toy_chat(toy, tmp_path_factory):
    """The toy world in the instruct model's chat format: a tiny model taught fenced answers
    under the chat template, and a config whose specialists and evaluation use it."""
    import yaml

    from tasks.config import load_config
    from tasks.policy import provision_tiny
    from tests.toy import teach

    root = tmp_path_factory.mktemp("toy-chat")
    config = load_config(toy / "toy.yaml").model_dump(mode="json")
    for specialist in config["sampling"]["specialists"]:
        specialist["prompt_style"] = "chat"
    config["sampling"]["max_new_tokens"] = 64
    config["policy"]["base"] = str(teach(
        provision_tiny(), root / "model",
        [s["system_prompt"] for s in config["sampling"]["specialists"]], steps=200,
        style="chat"))
    (root / "toy.yaml").write_text(yaml.safe_dump(config))
    return root
