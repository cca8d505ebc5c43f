"""The sandbox image: a Debian root file system with full python3, built without any registry.

    autodidact sandbox build            # or: python -m sandbox.image

Two ways, tried in this order (`--method` picks one):

  debootstrap  bootstrap Debian (the host's release and mirror, read from its apt sources) with
               debootstrap --variant=minbase --include=python3, trim docs and caches, and
               `docker import` the tree.  Needs root and the `debootstrap` package; works offline
               from any registry, only the Debian mirror is reached.  About a minute.
  dockerfile   `docker build` of sandbox/Dockerfile (FROM python:3.11-slim): for machines that can
               pull from a registry.

The image holds no project code: the runner is mounted read-only when a container starts, so
changing the runner does not require a rebuild.  Bump IMAGE_VERSION when the recipe changes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

IMAGE_NAME = "autodidact-sandbox"
IMAGE_VERSION = "1"
IMAGE_TAG = f"{IMAGE_NAME}:{IMAGE_VERSION}"
DOCKERFILE_DIR = Path(__file__).resolve().parent
TRIM = ["usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
        "var/cache/apt", "var/lib/apt/lists", "var/cache/debconf", "var/log"]


class ImageBuildError(RuntimeError):
    pass


def image_exists(client, tag: str = IMAGE_TAG) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def host_debian_source() -> tuple[str, str]:
    """(suite, mirror URI) of the host's Debian apt sources, deb822 or one-line format."""
    release = {}
    if Path("/etc/os-release").exists():
        for line in Path("/etc/os-release").read_text().splitlines():
            key, _, value = line.partition("=")
            release[key] = value.strip('"')
    suite = release.get("VERSION_CODENAME") or "bookworm"
    mirror = None
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) if Path(
        "/etc/apt/sources.list.d").is_dir() else []
    for path in sources:
        for block in path.read_text().split("\n\n"):
            fields = dict((k.strip(), v.strip()) for k, _, v in
                          (l.partition(":") for l in block.splitlines() if ":" in l
                           and not l.startswith("#")))
            suites = fields.get("Suites", "").split()
            if suite in suites and "security" not in fields.get("URIs", ""):
                mirror = fields.get("URIs", "").split()[0]
                break
        if mirror:
            break
    if mirror is None and Path("/etc/apt/sources.list").exists():
        for line in Path("/etc/apt/sources.list").read_text().splitlines():
            m = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
            if m and m.group(2) == suite:
                mirror = m.group(1)
                break
    return suite, mirror or "http://deb.debian.org/debian"


def build_debootstrap(client, tag: str = IMAGE_TAG, log=print) -> None:
    if os.geteuid() != 0:
        raise ImageBuildError("debootstrap needs root (run `make setup` as root)")
    if shutil.which("debootstrap") is None:
        raise ImageBuildError("debootstrap is not installed (`apt-get install debootstrap`)")
    suite, mirror = host_debian_source()
    with tempfile.TemporaryDirectory(prefix="autodidact-rootfs-") as tmp:
        root = Path(tmp) / "rootfs"
        log(f"debootstrap {suite} from {mirror} (about a minute)...")
        proc = subprocess.run(
            ["debootstrap", "--variant=minbase", "--include=python3", suite, str(root), mirror],
            capture_output=True, text=True)
        if proc.returncode != 0:
            raise ImageBuildError(f"debootstrap failed ({proc.returncode}):\n"
                                  f"{(proc.stdout + proc.stderr)[-2000:]}")
        for rel in TRIM:
            target = root / rel
            if target.is_dir():
                shutil.rmtree(target)
                target.mkdir(parents=True)
        tarball = Path(tmp) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(tarball), "."],
                       check=True)
        repo, _, version = tag.partition(":")
        log(f"importing {tag} into Docker...")
        client.api.import_image_from_file(
            str(tarball), repository=repo, tag=version,
            changes=["USER 10001:10001", "WORKDIR /tmp", "ENV LANG=C.UTF-8",
                     f'LABEL org.autodidact.image="{tag}" org.autodidact.method="debootstrap"'])
    if not image_exists(client, tag):
        raise ImageBuildError(f"docker import finished but {tag} is not there")


def build_dockerfile(client, tag: str = IMAGE_TAG, log=print) -> None:
    log(f"docker build {DOCKERFILE_DIR / 'Dockerfile'} (needs a registry)...")
    try:
        client.images.build(path=str(DOCKERFILE_DIR), dockerfile="Dockerfile", tag=tag, rm=True,
                            pull=False, labels={"org.autodidact.method": "dockerfile"})
    except Exception as exc:
        raise ImageBuildError(f"docker build failed: {exc}") from None


def build(method: str = "auto", force: bool = False, log=print) -> str:
    """Build the sandbox image if it is missing; return the method used (or 'present')."""
    from sandbox.engine import connect

    client = connect()
    if not force and image_exists(client):
        return "present"
    methods = {"debootstrap": build_debootstrap, "dockerfile": build_dockerfile}
    order = list(methods) if method == "auto" else [method]
    if any(m not in methods for m in order):
        raise ImageBuildError(f"unknown build method {method!r}: use auto, debootstrap or "
                              f"dockerfile")
    errors = []
    for name in order:
        try:
            methods[name](client, log=log)
            return name
        except ImageBuildError as exc:
            errors.append(f"{name}: {exc}")
            log(f"{name} did not work: {exc}")
    raise ImageBuildError("could not build the sandbox image:\n  " + "\n  ".join(errors))


if __name__ == "__main__":
    how = build(sys.argv[1] if len(sys.argv) > 1 else "auto")
    print(f"{IMAGE_TAG}: {how}")
