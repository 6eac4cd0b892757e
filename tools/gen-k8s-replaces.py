#!/usr/bin/env python3
"""Regenerate tools/kube-apiserver/go.mod (and go.sum) for a Kubernetes version.

k8s.io/kubernetes cannot be required like an ordinary module: its go.mod
requires every staging module (k8s.io/api, k8s.io/apiserver, ...) at v0.0.0
and replaces them with ./staging/src/k8s.io/..., which does not exist in the
published module zip. A consumer has to replace each staging module with the
published tag v0.MINOR.PATCH that matches v1.MINOR.PATCH.

This script reads the list of staging modules from upstream's own go.mod
(fetched with `go mod download -json k8s.io/kubernetes@VERSION` through the
Go module proxy), checks that every one is published at the matching v0
version, writes a fresh go.mod and runs `go mod tidy` so go.sum is complete.

Usage:
    python3 tools/gen-k8s-replaces.py v1.37.2 [--dir tools/kube-apiserver] [--no-tidy]

Standard library only (Python >= 3.11); needs `go` on PATH or /usr/local/go/bin/go.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

K8S_MODULE = "k8s.io/kubernetes"
DEFAULT_MODULE_PATH = "medcloud.local/tools/kube-apiserver"
HERE = Path(__file__).resolve().parent


def die(msg: str) -> NoReturn:
    print(f"gen-k8s-replaces: error: {msg}", file=sys.stderr)
    sys.exit(1)


def find_go() -> str:
    go = shutil.which("go") or (
        "/usr/local/go/bin/go" if os.access("/usr/local/go/bin/go", os.X_OK) else None
    )
    if not go:
        die("the Go toolchain ('go') was not found on PATH nor at /usr/local/go/bin/go")
    return go


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    env["GO111MODULE"] = "on"
    # Outside our module a -mod flag from the environment would only get in the way.
    flags = [f for f in env.get("GOFLAGS", "").split() if not f.startswith("-mod=")]
    env["GOFLAGS"] = " ".join(flags)
    return env


def run_go(go: str, args: list[str], cwd: Path | str) -> str:
    proc = subprocess.run([go, *args], cwd=cwd, env=go_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        # `go mod download -json` reports its error inside the JSON on stdout.
        detail = (proc.stderr.strip() + "\n" + proc.stdout.strip()).strip()
        die(f"`go {' '.join(args)}` failed (exit {proc.returncode}):\n{detail}")
    return proc.stdout


def parse_json_stream(text: str) -> list[dict]:
    """`go ... -json` prints several JSON objects back to back."""
    dec = json.JSONDecoder()
    out, i = [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        obj, i = dec.raw_decode(text, i)
        out.append(obj)


def strip_comment(line: str) -> str:
    return line.split("//", 1)[0].strip()


def gomod_directives(text: str) -> list[tuple[str, str]]:
    """Flatten a go.mod into (directive, body) pairs; `x ( a \n b )` gives (x, a), (x, b)."""
    out: list[tuple[str, str]] = []
    block = None  # directive of the ( ... ) block we are in
    for raw in text.splitlines():
        line = strip_comment(raw)
        if not line:
            continue
        if block:
            if line == ")":
                block = None
            else:
                out.append((block, line))
            continue
        directive, _, rest = line.partition(" ")
        rest = rest.strip()
        if rest == "(":
            block = directive
        else:
            out.append((directive, rest))
    return out


def parse_upstream_gomod(text: str) -> tuple[str, list[str], list[str], list[str]]:
    """Return (go version, godebug settings, staging modules to replace, staging modules skipped).

    Upstream also replaces staging modules it does not require (sample-controller,
    sample-cli-plugin, ...); those never enter our module graph, some are not even
    published for every release, so only the required ones are replaced.
    """
    go_version = ""
    godebug: list[str] = []
    replaced: list[str] = []
    required: set[str] = set()
    for directive, body in gomod_directives(text):
        if directive == "go":
            go_version = body
        elif directive == "godebug":
            godebug.append(body)
        elif directive == "require":
            required.add(body.split()[0])
        elif directive == "replace":
            m = re.match(r"^(\S+)(?:\s+\S+)?\s*=>\s*(\S+)$", body)
            if m and m.group(2).startswith("./staging/"):
                replaced.append(m.group(1))
    if not go_version:
        die("upstream go.mod has no go directive")
    if not replaced:
        die("upstream go.mod has no `replace k8s.io/x => ./staging/...` entries; layout changed?")
    staging = [p for p in replaced if p in required]
    skipped = [p for p in replaced if p not in required]
    return go_version, godebug, staging, skipped


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("version", help="Kubernetes version, e.g. v1.37.2")
    ap.add_argument(
        "--dir", default=str(HERE / "kube-apiserver"), help="module directory to rewrite"
    )
    ap.add_argument(
        "--no-tidy", action="store_true", help="only write go.mod, do not run `go mod tidy`"
    )
    args = ap.parse_args()

    version = args.version if args.version.startswith("v") else "v" + args.version
    m = re.fullmatch(r"v1\.(\d+)\.(\d+)", version)
    if not m:
        die(f"expected a release version like v1.37.2, got {args.version!r}")
    staging_version = f"v0.{m.group(1)}.{m.group(2)}"

    go = find_go()
    moddir = Path(args.dir).resolve()
    moddir.mkdir(parents=True, exist_ok=True)
    gomod_path = moddir / "go.mod"

    module_path = DEFAULT_MODULE_PATH
    if gomod_path.exists():
        mm = re.search(r"^module\s+(\S+)", gomod_path.read_text(), re.M)
        if mm:
            module_path = mm.group(1)

    with tempfile.TemporaryDirectory(prefix="gen-k8s-") as tmp:
        print(f"fetching {K8S_MODULE}@{version} go.mod from the module proxy ...", file=sys.stderr)
        info = parse_json_stream(
            run_go(go, ["mod", "download", "-json", f"{K8S_MODULE}@{version}"], tmp)
        )[0]
        if info.get("Error"):
            die(f"{K8S_MODULE}@{version}: {info['Error']}")
        upstream = Path(info["GoMod"]).read_text()
        go_version, godebug, staging, skipped = parse_upstream_gomod(upstream)
        if skipped:
            print(
                f"not replacing staging modules upstream does not require: {', '.join(skipped)}",
                file=sys.stderr,
            )

        print(f"checking {len(staging)} staging modules at {staging_version} ...", file=sys.stderr)
        out = run_go(
            go, ["list", "-m", "-json", "-e", *[f"{p}@{staging_version}" for p in staging]], tmp
        )
        missing = [
            f"{o['Path']}: {o['Error'].get('Err', o['Error'])}"
            for o in parse_json_stream(out)
            if o.get("Error")
        ]
        if missing:
            die(f"staging modules not published at {staging_version}:\n  " + "\n  ".join(missing))

    lines = [
        f"// Generated by tools/gen-k8s-replaces.py {version} -- do not edit by hand.",
        f"// Builds upstream kube-apiserver ({K8S_MODULE} {version}); the replace block maps",
        "// each staging module that upstream's go.mod pins to ./staging/src/... onto",
        f"// its published tag {staging_version}. Regenerate with:",
        "//   python3 tools/gen-k8s-replaces.py vX.Y.Z",
        "",
        f"module {module_path}",
        "",
        f"go {go_version}",
        "",
    ]
    if len(godebug) == 1:
        lines += [f"godebug {godebug[0]}", ""]
    elif godebug:
        lines += ["godebug (", *[f"\t{g}" for g in godebug], ")", ""]
    lines += [f"require {K8S_MODULE} {version}", ""]
    lines += ["replace (", *[f"\t{p} => {p} {staging_version}" for p in staging], ")", ""]
    gomod_path.write_text("\n".join(lines))
    print(f"wrote {gomod_path} ({len(staging)} replaces -> {staging_version})", file=sys.stderr)

    if not args.no_tidy:
        if not (moddir / "main.go").exists():
            die(f"{moddir}/main.go is missing; `go mod tidy` needs the main package")
        print(
            "running `go mod tidy` (downloads the dependency graph; may take a while) ...",
            file=sys.stderr,
        )
        run_go(go, ["mod", "tidy"], moddir)
        print(f"tidied {gomod_path} and go.sum", file=sys.stderr)


if __name__ == "__main__":
    main()
