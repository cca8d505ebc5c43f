"""What the Prefect UI shows about a run: flow run names, tags, and the flow runs a crash left.

A *run* (the parent flow's run id, tasks/records.py) can take several flow runs: the first one,
and one more each time it is resumed after a crash or a failed night. Every one of them, and every
cycle subflow and task inside, carries the tag `run:<run id>`, so the UI's tag filter shows a
run's whole history; `config:<name>` says which configuration it ran, and a cycle's runs carry
`policy:<id>` of the policy that cycle started from. The parent flow run is named after the run
(`<run id>`, then `<run id>-resume-<k>`), its cycles `<run id>-cycle-<n>`.

A process killed with SIGKILL (or a machine that went down) cannot tell the server, so its flow
runs would stay Running forever. Two things fix that:

- *the run lock*: a run is open in at most one process. `<run>/.lock` carries a POSIX record lock
  (`lockf`) for the life of the parent flow; the kernel releases it when the process dies, however
  it dies, and unlike `flock` it is not inherited by forked workers that might outlive it. A
  second process that tries to open the same run is refused with the holder's pid. The lock
  guards the flow process only: on an external Dask cluster (`run.dask_address`) the tasks it had
  submitted keep running after it dies, so wait for them to finish (the Dask dashboard shows
  them) before resuming, or the resumed run repeats their shards beside them.
- *the crash sweep*: a process that gets the lock knows that no live process owns the run, so every
  flow run of the run still Running or Pending (and their task runs) is a leftover of a dead one.
  They are set to Crashed, with a message naming the flow run that resumes them, and the resuming
  flow run gets a `resumes` artifact linking back to them.

The server can also tell by itself: every flow run sends a heartbeat (every 180 s by default,
`PREFECT_FLOWS_HEARTBEAT_FREQUENCY`), and the automation `autodidact deploy` (and the local
server) installs marks a flow run that missed three Crashed (flows/server.py). The sweep needs no
automation, and names the resume.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

PARENT_FLOW = "self-training"


class RunBusy(RuntimeError):
    """The run is open in another live process."""


def run_tag(run_id: str) -> str:
    return f"run:{run_id}"


def store_tag(store: Path) -> str:
    """`store:<8 hex>` of the store's resolved path. A run id names a configuration and a start
    policy, not a place, so the same run can exist in two stores: queries pair the two tags."""
    import hashlib

    return "store:" + hashlib.sha256(str(Path(store).resolve()).encode()).hexdigest()[:8]


def run_tags(run_id: str, config_name: str, store: Path) -> list[str]:
    return [run_tag(run_id), f"config:{config_name}", store_tag(store)]


def _all(client, read, **filters) -> list:
    """Every row of a read_* query, page by page (the API returns at most 200 at a time)."""
    rows, page = [], 200
    while True:
        got = read(**filters, limit=page, offset=len(rows))
        rows += got
        if len(got) < page:
            return rows


def policy_tag(policy_id: str) -> str:
    return f"policy:{policy_id}"


# record locks are per process: this process's own second open of a run is refused here
_HELD: set[Path] = set()


class RunLock:
    """`<run>/.lock`, locked with `lockf` while a process has the run open (see the module doc)."""

    def __init__(self, run_dir: Path, run_id: str):
        self.path = Path(run_dir) / ".lock"
        self.run_id = run_id
        self._fd: int | None = None

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.resolve() in _HELD:
            raise RunBusy(f"run {self.run_id} is already open in this process")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EAGAIN):  # ENOLCK: no locks on this disk
                os.close(fd)
                raise RuntimeError(f"cannot lock {self.path} ({exc.strerror}): the run store's "
                                   "file system does not support POSIX record locks (an NFS "
                                   "mount without lockd?); put the store on one that does") \
                    from exc
            holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunBusy(f"run {self.run_id} is already open in another process ({holder}): "
                          "wait for it to finish, or stop that process and resume the run") \
                from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode())
        self._fd = fd
        _HELD.add(self.path.resolve())
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
            _HELD.discard(self.path.resolve())

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


@dataclass
class Claim:
    """What `claim_flow_run` did: the name it gave the flow run and the runs it marked Crashed."""
    name: str
    earlier: list[tuple[str, str]] = field(default_factory=list)  # (name, state) of earlier runs
    crashed: list[str] = field(default_factory=list)  # names of the flow runs set to Crashed


def claim_flow_run(run_id: str, store: Path, tags: list[str]) -> Claim:
    """Name the current (parent) flow run after the run, tag it, and mark the flow runs a dead
    process left Running (and their task runs Running, Pending or waiting to retry) as Crashed.
    Call with the run lock held."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (FlowFilter, FlowFilterName, FlowRunFilter,
                                                FlowRunFilterState, FlowRunFilterStateType,
                                                FlowRunFilterTags, TaskRunFilter,
                                                TaskRunFilterFlowRunId, TaskRunFilterState,
                                                TaskRunFilterStateType)
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.runtime import flow_run
    from prefect.states import Crashed

    me = flow_run.id
    live = [StateType.RUNNING, StateType.PENDING]
    this_run = FlowRunFilterTags(all_=[run_tag(run_id), store_tag(store)])
    with get_client(sync_client=True) as client:
        mine = client.read_flow_run(me)
        earlier_parents = [r for r in _all(
            client, client.read_flow_runs,
            flow_filter=FlowFilter(name=FlowFilterName(any_=[PARENT_FLOW])),
            flow_run_filter=FlowRunFilter(tags=this_run),
            sort=FlowRunSort.EXPECTED_START_TIME_ASC)
            if str(r.id) != str(me)]
        name = run_id if not earlier_parents else f"{run_id}-resume-{len(earlier_parents)}"
        client.update_flow_run(me, name=name, tags=sorted(set(mine.tags) | set(tags)))
        claim = Claim(name=name, earlier=[(r.name, r.state.name if r.state else "-")
                                          for r in earlier_parents])
        stale = [r for r in _all(client, client.read_flow_runs, flow_run_filter=FlowRunFilter(
            tags=this_run, state=FlowRunFilterState(type=FlowRunFilterStateType(any_=live))))
            if str(r.id) != str(me)]
        message = (f"the process running it died; flow run {name} resumed run {run_id} "
                   "(finished tasks come from the cache)")
        for r in stale:
            client.set_flow_run_state(r.id, Crashed(message=message), force=True)
            claim.crashed.append(r.name)
        if stale:  # their task runs too, including those waiting to retry (Scheduled)
            tasks = _all(client, client.read_task_runs, task_run_filter=TaskRunFilter(
                flow_run_id=TaskRunFilterFlowRunId(any_=[r.id for r in stale]),
                state=TaskRunFilterState(type=TaskRunFilterStateType(
                    any_=live + [StateType.SCHEDULED]))))
            for t in tasks:
                client.set_task_run_state(t.id, Crashed(message=message), force=True)
    return claim


# ----------------------------------------------------------------------------------------------
# `autodidact runs`: the runs of a store, with their state in the API


@dataclass
class RunRow:
    run_id: str
    config: str
    started: str
    state: str
    cycles: str
    last_promotion: str


def list_runs(store: Path, with_api: bool = True) -> list[RunRow]:
    """Every run of the store, oldest first: what the files say, and the state of its newest
    parent flow run when the API answers (`-` when it does not, or never saw the run)."""
    import datetime as dt
    import json

    import yaml

    from tasks.policy import Policy

    promotions: dict[str, dict] = {}
    path = store / "promoted.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                entry = json.loads(line)
                promotions[entry["run"]] = entry  # newest last
    rows = []
    for meta_path in store.glob("*/run.json"):
        run_dir = meta_path.parent
        meta = json.loads(meta_path.read_text())
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        created = meta.get("created") or dt.datetime.fromtimestamp(
            meta_path.stat().st_mtime, dt.timezone.utc).isoformat(timespec="seconds")
        done = sum(1 for _ in run_dir.glob("cycle-*/summary.json"))
        promo = promotions.get(meta["run_id"])
        rows.append(RunRow(
            run_id=meta["run_id"], config=config["run"]["name"], started=created, state="-",
            cycles=f"{done}/{config['run']['cycles']}",
            last_promotion=(f"cycle {promo['cycle']}: "
                            f"{Policy.model_validate(promo['policy']).id} "
                            f"(dev {promo['dev_pass1_greedy']:.3f})" if promo else "-")))
    rows.sort(key=lambda r: r.started)
    if with_api and rows:
        states = api_states([r.run_id for r in rows], store)
        for r in rows:
            r.state = states.get(r.run_id, "-")
    return rows


def api_states(run_ids: list[str], store: Path) -> dict[str, str]:
    """The state name of each run's newest parent flow run in this store, by run id."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (FlowFilter, FlowFilterName, FlowRunFilter,
                                                FlowRunFilterTags)
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = _all(client, client.read_flow_runs,
                    flow_filter=FlowFilter(name=FlowFilterName(any_=[PARENT_FLOW])),
                    flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(
                        any_=[run_tag(r) for r in run_ids], all_=[store_tag(store)])),
                    sort=FlowRunSort.EXPECTED_START_TIME_DESC)
    states: dict[str, str] = {}
    for r in runs:
        for tag in r.tags:
            if tag.startswith("run:") and tag[4:] not in states:
                states[tag[4:]] = r.state.name if r.state else "-"
    return states


def format_runs(rows: list[RunRow]) -> str:
    header = ("run", "config", "started", "state", "cycles", "last promotion")
    table = [header] + [(r.run_id, r.config, r.started, r.state, r.cycles, r.last_promotion)
                        for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                     for row in table)


# ----------------------------------------------------------------------------------------------
# A cycle's lineage: the links of its summary, a Mermaid graph, asset materializations


def artifact_key(run_id: str, cycle: int, what: str) -> str:
    """A cycle's artifact key: `<run>-cycle-<n>-<what>`."""
    return artifact_key_of(f"{run_id}-cycle-{cycle}-{what}")


def artifact_key_of(raw: str) -> str:
    """Artifact keys: lowercase letters, digits and dashes."""
    return "".join(c if c.isalnum() else "-" for c in raw.lower())


def artifact_url(artifact_id) -> str:
    """The UI page of one artifact: its content (`/artifacts/key/<key>` is the key's timeline)."""
    return f"/artifacts/artifact/{artifact_id}"


def latest_artifact_url(key: str) -> str:
    """The content page of the newest artifact of `key`; the key's page when the API does not
    answer or holds none."""
    try:
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

        with get_client(sync_client=True) as client:
            found = client.read_latest_artifacts(artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key])))
        if found:
            return artifact_url(found[0].latest_id)
    except Exception:  # the links are extra: an API hiccup falls back to the key's page
        pass
    return f"/artifacts/key/{key}"


def cycle_links(r, ids: dict) -> dict[str, str]:
    """Where the lineage of cycle `r` links: each artifact the cycle published (`ids`: what ->
    artifact id, `summary`, `pairs`, `evaluation`, `promotion`, ...) by its content page, the
    previous cycle's summary and the parent policy's artifact by their newest versions. What is
    missing links to its key's page."""
    links = {what: artifact_url(i) for what, i in ids.items()}
    if r.cycle > 1 and "previous summary" not in links:
        links["previous summary"] = latest_artifact_url(
            artifact_key(r.run_id, r.cycle - 1, "summary"))
    if r.started_from.adapters and "parent policy" not in links:
        links["parent policy"] = latest_artifact_url(
            artifact_key_of(f"policy-{r.started_from.id}"))
    return links


def _link(r, links: dict[str, str] | None, what: str) -> str:
    """A link of the lineage: its content page when known, else its key's page."""
    if links and what in links:
        return links[what]
    if what == "previous summary":
        return f"/artifacts/key/{artifact_key(r.run_id, r.cycle - 1, 'summary')}"
    if what == "parent policy":
        return f"/artifacts/key/{artifact_key_of('policy-' + r.started_from.id)}"
    return f"/artifacts/key/{artifact_key(r.run_id, r.cycle, what)}"


# ----------------------------------------------------------------------------------------------
# The content the lineage shows: the cycle's training problems and a few of its pairs

SAMPLE_PAIRS = 6  # pairs shown in the lineage, taken in turn from each kind
SNIPPET = 160  # characters of a chosen or rejected answer shown


def _read_jsonl(path: Path) -> list[dict]:
    import json

    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _pairs_of(r) -> list[dict]:
    return _read_jsonl(Path(r.pairs_file.path))


def training_problems(r) -> list[dict]:
    """One row per training problem of cycle `r`: its id, source, why it was drawn (draw.json)
    and the pairs mined from it, by kind."""
    import json

    problems = Path(r.directory) / "problems"
    why = {}
    if (problems / "draw.json").is_file():
        why = {w["id"]: w for w in json.loads((problems / "draw.json").read_text())["problems"]}
    pairs: dict[str, dict[str, int]] = {}
    for pair in _pairs_of(r):
        kinds = pairs.setdefault(pair["problem_id"], {})
        kinds[pair["kind"]] = kinds.get(pair["kind"], 0) + 1
    rows = []
    for problem in _read_jsonl(problems / "train.jsonl"):
        w = why.get(problem["id"], {})
        mined = pairs.get(problem["id"], {})
        rows.append({"problem": problem["id"], "source": problem.get("source", ""),
                     "drawn because": w.get("reason", ""),
                     "pairs": sum(mined.values()),
                     "by kind": ", ".join(f"{k} {n}" for k, n in sorted(mined.items()))})
    return rows


def sample_pairs(r, n: int = SAMPLE_PAIRS) -> list[dict]:
    """A few of the cycle's pairs, taken in turn from each kind in the file's order: the problem,
    the attempts and rewards of chosen and rejected, and the start of each answer."""
    by_kind: dict[str, list[dict]] = {}
    for pair in _pairs_of(r):
        by_kind.setdefault(pair["kind"], []).append(pair)
    picked = []
    while len(picked) < n and any(by_kind.values()):
        for kind in sorted(by_kind):
            if by_kind[kind] and len(picked) < n:
                picked.append(by_kind[kind].pop(0))
    return [{"kind": p["kind"], "problem": p["problem_id"],
             "chosen": f"{p['chosen_id']} ({p['chosen_reward']:.2f})",
             "rejected": (f"{p['rejected_id']} ({p['rejected_reward']:.2f})"
                          if p.get("rejected_id") else "-"),
             "chosen answer": _code(p["chosen"]), "rejected answer": _code(p["rejected"])}
            for p in picked]


def _code(text: str, limit: int = SNIPPET) -> str:
    """The start of an answer as an inline code span a markdown table cell can hold."""
    import textwrap

    text = " ⏎ ".join(line.rstrip() for line in textwrap.dedent(text).strip("\n").splitlines())
    if len(text) > limit:
        text = text[:limit].rstrip() + " …"
    if not text:
        return ""
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _table(rows: list[dict]) -> str:
    """Rows as a markdown table, `|` escaped in the cells."""
    keys = list(rows[0])
    cell = lambda v: str(v).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(row[k]) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def content_markdown(r) -> str:
    """The cycle's training problems and a few of its pairs, as markdown tables."""
    problems, pairs = training_problems(r), sample_pairs(r)
    out = [f"### Training problems ({len(problems)})", "",
           _table(problems) if problems else "(no train.jsonl in the cycle's directory)", "",
           f"### Sample pairs ({len(pairs)} of {sum(r.pairs.values())}, from "
           f"`{r.pairs_file.path}`)", "",
           _table(pairs) if pairs else "(no pairs were mined)", ""]
    return "\n".join(out)


def policy_markdown(r, links: dict[str, str] | None = None) -> str:
    """The artifact `policy-<id>` of the policy cycle `r` trained: where to start walking back
    from an adapter (search the artifacts for its id). `links`: `cycle_links`."""
    link = lambda what: _link(r, links, what)  # noqa: E731
    p, parent = r.trained, r.started_from
    came_from = (f"[policy-{parent.id}]({link('parent policy')})"
                 if parent.adapters else f"`{parent.id}` (the base model `{parent.base}`)")
    return (f"# policy {p.id}\n\n"
            f"- adapter: `{p.adapters[-1]}` (model card: `{p.adapters[-1]}/README.md`, "
            f"manifest: `{p.adapters[-1]}/manifest.json`)\n"
            f"- trained by [cycle {r.cycle} of run {r.run_id}]({link('summary')})"
            f" on [{sum(r.pairs.values())} pairs]({link('pairs')}): "
            f"`{r.pairs_file.path}`\n"
            f"- from policy {came_from}\n"
            f"- [evaluation]({link('evaluation')}): dev greedy pass@1 "
            f"{r.dev.pass1_greedy:.3f}, test {r.test.pass1_greedy:.3f}; "
            f"[{'promoted' if r.promoted else 'not promoted'}]"
            f"({link('promotion')})\n\n"
            f"## What it was trained on\n\n{content_markdown(r)}")


def lineage_nodes(r) -> dict[str, tuple[str, str]]:
    """What cycle `r` (a CycleResult) read and wrote: node -> (label, file or directory)."""
    run = Path(r.directory).parent
    nodes = {
        "problems": (f"problems: {r.monitoring.problems} trained on", str(run / "problems")),
        "challenger": (f"challenger {r.started_from.id}", _policy_path(r.started_from)),
        "champion": (f"champion {r.champion.id}", _policy_path(r.champion)),
        "attempts": (f"attempts: {r.attempts}", str(Path(r.directory) / "execute")),
        "pairs": (f"pairs: {sum(r.pairs.values())}", r.pairs_file.path),
        "evaluation": (f"dev {r.dev.pass1_greedy:.3f} / test {r.test.pass1_greedy:.3f}",
                       str(run / "evaluations" / r.dev.policy_id)),
        "decision": ("promoted" if r.promoted else "not promoted",
                     str(Path(r.directory) / "promote" / "decision.json")),
    }
    if r.memory is not None:  # memory enabled: what the cycle consolidated into
        nodes["memory"] = (f"memory version {r.memory_version}", _memory_dir(run))
    if r.trained is not None:
        nodes["adapter"] = (f"adapter {r.trained.id}", r.trained.adapters[-1])
    return nodes


def _policy_path(policy) -> str:
    return policy.adapters[-1] if policy.adapters else policy.base


def _memory_dir(run: Path) -> str:
    import json

    meta = run / "run.json"
    return json.loads(meta.read_text())["memory_dir"] if meta.exists() else str(run / "memory")


EDGES = [("problems", "attempts"), ("challenger", "attempts"), ("champion", "attempts"),
         ("attempts", "memory"), ("attempts", "pairs"), ("pairs", "adapter"),
         ("challenger", "adapter"), ("adapter", "evaluation"), ("evaluation", "decision")]


def mermaid(r) -> str:
    """The cycle's data flow as a Mermaid graph (the Prefect UI renders it in markdown)."""
    nodes = lineage_nodes(r)
    edges = [(a, b) for a, b in EDGES if a in nodes and b in nodes]
    if "adapter" not in nodes:  # nothing trained: the challenger itself was evaluated
        edges.append(("challenger", "evaluation"))
    lines = ["```mermaid", "flowchart LR"]
    lines += [f'  {key}["{label}"]' for key, (label, _) in nodes.items()]
    lines += [f"  {a} --> {b}" for a, b in edges]
    return "\n".join(lines + ["```"])


def lineage_markdown(r, links: dict[str, str] | None = None) -> str:
    """The links of a cycle's chain: each artifact of the cycle (by its content page when
    `links`, from `cycle_links`, says where), the files, the policy it started from (the previous
    cycle's summary), a Mermaid graph of it all, then the content itself: the training problems
    and a few pairs."""
    link = lambda what: _link(r, links, what)  # noqa: E731
    came_from = (f"[cycle {r.cycle - 1}'s summary]({link('previous summary')})" if r.cycle > 1
                 else "the run's start policy")
    nodes = lineage_nodes(r)
    rows = [
        ("policy it started from", f"`{r.started_from.id}`, chosen by {came_from}",
         nodes["challenger"][1]),
        ("problem set", f"{r.monitoring.problems} training problems (listed below), dev "
                        f"{r.dev.problems}, test {r.test.problems}", nodes["problems"][1]),
        ("memory snapshot", (f"LanceDB version {r.memory_read} read by sampling, "
                             if r.memory_read is not None else "")
         + f"version {r.memory_version} after consolidation"
         + ("" if r.memory else " (memory disabled: nothing written)"),
         nodes["memory"][1] if r.memory else "-"),
        ("pairs dataset", f"[{sum(r.pairs.values())} pairs by kind]({link('pairs')}), a few "
                          "below", nodes["pairs"][1]),
        ("adapter, its model card and manifest",
         f"`{r.trained.id}`: `README.md` (the card) and `manifest.json` in its directory"
         if r.trained else "none (no pairs)", nodes["adapter"][1] if r.trained else "-"),
        ("evaluation", f"[dev and test]({link('evaluation')})", nodes["evaluation"][1]),
        ("decision", f"[{nodes['decision'][0]}]({link('promotion')})", nodes["decision"][1]),
    ]
    table = "\n".join(f"| {a} | {b} | `{c}` |" for a, b, c in rows)
    return (f"| link | what | file |\n|---|---|---|\n{table}\n\n{mermaid(r)}\n\n"
            f"{content_markdown(r)}")


def asset_keys(r) -> dict[str, str]:
    """Each lineage node's asset key: a URI of letters, digits and `/-._:` only (Prefect refuses
    spaces and most punctuation, which file paths may hold; the path goes in the asset's
    description). Policies are keyed by content id, so a cycle's adapter is the next cycle's
    challenger: the graph runs across cycles."""
    run = Path(r.directory).parent
    where = f"autodidact://{store_tag(run.parent)[6:]}/{r.run_id}"
    keys = {"problems": f"{where}/problems",
            "challenger": f"autodidact://policy/{r.started_from.id}",
            "champion": f"autodidact://policy/{r.champion.id}",
            "attempts": f"{where}/cycle-{r.cycle}/attempts",
            "memory": f"autodidact://{store_tag(run.parent)[6:]}/memory/v{r.memory_version}",
            "pairs": f"{where}/cycle-{r.cycle}/pairs",
            "evaluation": f"{where}/evaluations/{r.dev.policy_id}",
            "decision": f"{where}/cycle-{r.cycle}/decision"}
    if r.trained is not None:
        keys["adapter"] = f"autodidact://policy/{r.trained.id}"
    return keys


def materialize_lineage(r) -> None:
    """Asset materializations of the cycle's outputs, each naming the assets it was made from,
    for servers that draw asset graphs. Content-keyed like the stages, so a resumed cycle shows
    them `Cached` and emits nothing twice. A failure here is logged, never the cycle's."""
    from prefect import get_run_logger
    from prefect.assets import Asset, AssetProperties, materialize

    from tasks.caching import cached

    nodes = lineage_nodes(r)
    try:
        keys = asset_keys(r)
        asset = {k: Asset(key=keys[k], properties=AssetProperties(
            name=label, description=f"{label}: {path}"[:2000]))
            for k, (label, path) in nodes.items()}
        for target in ("memory", "pairs", "adapter", "decision"):
            if target not in nodes:
                continue
            deps = [asset[a] for a, b in EDGES if b == target and a in nodes]
            if target == "decision":
                deps = [asset["evaluation"]] + ([asset["adapter"]] if "adapter" in nodes else [])
            record = materialize(asset[target], asset_deps=deps,
                                 task_run_name=f"lineage-{target}[cycle={r.cycle}]",
                                 **cached())(_record)
            record(asset[target].key, [d.key for d in deps])
    except Exception as exc:  # an invalid key, an API hiccup: the lineage is extra
        get_run_logger().warning("cycle %d: asset materializations not recorded: %s",
                                 r.cycle, exc)


def _record(key: str, deps: list[str]) -> str:
    """A materialization's task body: the asset was written by its stage; this records where it
    came from (the arguments make the cache key)."""
    return key
