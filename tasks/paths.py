"""Where things live on disk.

    <repo>/                      REPO_ROOT: the checkout (configs/, .venv, .venv-export)
    $AUTODIDACT_HOME             home(): defaults to <repo>/.autodidact
      data/                      problem sets fetched once (MBPP)
      models/                    the embedded models, dequantized once; models/openvino/ holds
                                 the int8 copy of each policy the fast backend sampled with
      runs/                      the default run store (`run.store` overrides it)
      prefect/                   the local Prefect server's database
      logs/                      set-up, dockerd and Prefect server logs

Every path is read when called, so setting `AUTODIDACT_HOME` in a process takes effect at once.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def home() -> Path:
    """The autodidact home: `$AUTODIDACT_HOME`, else `<repo>/.autodidact`."""
    return Path(os.environ.get("AUTODIDACT_HOME") or REPO_ROOT / ".autodidact").expanduser()


def data_dir() -> Path:
    """Where downloaded problem sets live: `<home>/data`."""
    return home() / "data"


def models_dir() -> Path:
    """Where embedded models and exported policies live: `<home>/models`."""
    return home() / "models"


def runs_dir() -> Path:
    """The default run store: `<home>/runs`."""
    return home() / "runs"


def logs_dir() -> Path:
    return home() / "logs"
