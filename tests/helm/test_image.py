"""images/medcloud/Dockerfile, checked without a Docker engine: what it copies exists and is not
ignored, base images are pinned, the final stage runs as a numeric non-root user with no build
tools, the generated protobuf code is made inside the build, the tools the chart runs are where
the chart and the code look for them, and the image the chart installs is the one docs say to
build."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
from dataclasses import dataclass, field

import yaml

from tests.helm.chart import CHART, PANYU, ROOT, containers, pod_specs, render

DOCKERFILE = ROOT / "images" / "medcloud" / "Dockerfile"
BUILD_COMMAND = "docker build -f images/medcloud/Dockerfile -t medcloud:0.1.0 ."


@dataclass
class Stage:
    image: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def arguments(self, instruction: str) -> list[str]:
        return [rest for name, rest in self.instructions if name == instruction]


def stages() -> list[Stage]:
    """The Dockerfile's stages, each with its instructions (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    parsed: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else ""
            parsed.append(Stage(words[0], name))
        elif parsed:
            parsed[-1].instructions.append((instruction, rest.strip()))
    return parsed


def copies(stage: Stage) -> list[tuple[str | None, list[str], str]]:
    """(--from stage or None, sources, destination) of each COPY."""
    result = []
    for rest in stage.arguments("COPY"):
        words = rest.split()
        origin = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
        paths = [w for w in words if not w.startswith("--")]
        result.append((origin, paths[:-1], paths[-1]))
    return result


def environment(stage: Stage) -> dict[str, str]:
    env = {}
    for rest in stage.arguments("ENV"):
        for name, value in re.findall(r"(\w+)=(\S+)", rest):
            env[name] = value
    return env


def ignored(path: str) -> bool:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = path.rstrip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes for pattern in patterns)


def test_every_copied_source_exists_and_is_in_the_build_context():
    for stage in stages():
        for origin, sources, _ in copies(stage):
            if origin is not None:
                continue
            for source in sources:
                assert (ROOT / source).exists(), source
                assert not ignored(source), f"{source} is left out by .dockerignore"


def test_generated_protobuf_code_is_made_in_the_build_not_copied():
    assert ignored("services/medcloud/inventory/v1/inventory_pb2.py")
    build = next(stage for stage in stages() if stage.name == "python-build")
    runs = " ".join(build.arguments("RUN"))
    assert "tools/gen-proto.sh" in runs
    assert "-c constraints.txt" in runs or "PIP_CONSTRAINT=/src/constraints.txt" in runs


def test_base_images_are_pinned_to_versions():
    names = {stage.name for stage in stages() if stage.name}
    for stage in stages():
        if stage.image in names:
            continue
        tag = stage.image.rpartition(":")[2]
        assert re.match(r"^v?\d+\.\d+\.\d+", tag), f"{stage.image} is not pinned to a version"


def test_the_final_stage_runs_as_a_numeric_non_root_user_without_build_tools():
    final = stages()[-1]
    (user,) = final.arguments("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0
    assert not gid or (gid.isdigit() and int(gid) != 0)
    runs = " ".join(final.arguments("RUN"))
    for tool in ("pip install", "apt-get", "gcc", "build-essential", "go build", "go install"):
        assert tool not in runs
    origins = {origin for origin, _, _ in copies(final) if origin}
    assert origins == {"go-tools", "python-build"}


def test_the_tools_are_where_the_chart_and_the_code_look():
    final = stages()[-1]
    env = environment(final)
    copied = {destination for _, _, destination in copies(final)}
    assert env["MEDCLOUD_ETCDUTL_BIN"] in copied
    assert "/usr/local/bin/grpc-health-probe" in copied
    assert env["MEDCLOUD_CRD_DIR"] in copied
    assert env["MEDCLOUD_REQUIREMENTS_FILE"] in copied
    assert env["PATH"].startswith("/opt/medcloud/bin:")
    code = "\n".join(path.read_text() for path in (ROOT / "services").rglob("*.py"))
    for name in env:
        if name.startswith("MEDCLOUD_"):
            assert re.search(rf"['\"]{name}['\"]", code), f"{name} is read by no code"


def test_grpc_health_probe_is_the_version_make_builds():
    (go_tools,) = [stage for stage in stages() if stage.name == "go-tools"]
    (argument,) = [
        a for a in go_tools.arguments("ARG") if a.startswith("GRPC_HEALTH_PROBE_VERSION")
    ]
    pinned = re.search(
        r"^GRPC_HEALTH_PROBE_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.M
    )
    assert pinned is not None
    assert argument.split("=", 1)[1] == pinned.group(1)


def test_every_module_the_image_and_chart_run_exists():
    (command,) = stages()[-1].arguments("CMD")
    modules = {json.loads(command)[2]}
    for _, spec in pod_specs(render((PANYU,))):
        for container in containers(spec):
            if container["command"][:2] == ["python", "-m"]:
                modules.add(container["command"][2])
    assert modules >= {f"medcloud.{part}" for part in ("inventory", "operators")}
    for module in modules:
        assert importlib.util.find_spec(module) is not None, module
        assert importlib.util.find_spec(f"{module}.__main__") is not None, module


def test_the_chart_installs_the_image_docs_say_to_build():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["repository"] == "medcloud"
    assert values["image"]["tag"] == chart["appVersion"]
    built = f"-t {values['image']['repository']}:{values['image']['tag']} ."
    assert BUILD_COMMAND.endswith(built)
    assert BUILD_COMMAND in DOCKERFILE.read_text()
    assert BUILD_COMMAND in (ROOT / "docs" / "helm.md").read_text()
