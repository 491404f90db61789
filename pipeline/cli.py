"""`pirl-train`: the training entry point.

    pirl-train demos    --task PickCube-v1 --episodes 20 --out data/pickcube      scripted demonstrations
    pirl-train sft      --data '[data/a,data/b]' --out runs/sft                    few-shot flow-matching SFT
    pirl-train ppo      --init runs/sft/checkpoint --out runs/ppo                  Flow-Noise / Flow-SDE PPO
    pirl-train pipeline --config configs/cpu_demo.yaml --out runs/demo             all of the above + report
    pirl-train smoke    --out runs/smoke                                           policy smoke test, no simulator

Each command's options are the fields of its config dataclass, parsed by draccus: `--config FILE` (YAML) sets
any of them, nested sections included, and `--section.field value` overrides the file (`--ppo.algo.lr 3e-5`).
`pirl-train COMMAND --help` lists every field with its documentation. A key that is not a field, a value of
the wrong type (`--resume ture`) or a value the config refuses is an error before anything runs.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

COMMANDS = {
    "demos": "collect scripted demonstrations into a dataset directory",
    "sft": "few-shot flow-matching SFT from demo datasets",
    "ppo": "Flow-Noise / Flow-SDE PPO from an SFT checkpoint (torchrun for several ranks)",
    "pipeline": "demos -> SFT -> PPO -> evaluation of both on the same seeds -> engine -> table and plots",
    "smoke": "policy smoke test on synthetic data (no simulator)",
}


class ConfigError(ValueError):
    """A config file or flag that does not fit the command's config tree."""


def config_class(command: str) -> type:
    if command == "demos":
        from training.data.collect import CollectConfig

        return CollectConfig
    if command == "sft":
        from training.sft.config import SFTConfig

        return SFTConfig
    if command == "ppo":
        from training.ppo.config import PPORunConfig

        return PPORunConfig
    if command == "pipeline":
        from pipeline.config import PipelineConfig

        return PipelineConfig
    from training.demo import DemoConfig

    return DemoConfig


def check_keys(cls: type, tree: Any, where: str) -> None:
    """Every key of a config file's mapping names a field of `cls` (recursively): draccus refuses unknown keys
    too, this adds the closest valid name and the file's path to the message."""
    if not isinstance(tree, dict):
        raise ConfigError(f"{where}: expected a mapping of {cls.__name__} fields, got {type(tree).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, value in tree.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {sorted(fields)}"
            raise ConfigError(f"unknown key {key!r} in {where}{hint}")
        sub = _dataclass_type(cls, key)
        if sub is not None and value is not None:
            check_keys(sub, value, f"{where}.{key}")
        elif _is_tuple(cls, key) and isinstance(value, str):
            tree[key] = [value]  # `tasks: PushCube-v1` means one task, not a tuple of characters


def field_paths(cls: type, prefix: str = "") -> list[str]:
    """Every field of a config tree as a dotted path: `algo.sampler.method`."""
    paths = []
    for f in dataclasses.fields(cls):
        sub = _dataclass_type(cls, f.name)
        paths += field_paths(sub, f"{prefix}{f.name}.") if sub is not None else [prefix + f.name]
    return paths


def _is_tuple(cls: type, name: str) -> bool:
    import typing

    return typing.get_origin(typing.get_type_hints(cls)[name]) is tuple


def _tuple_paths(cls: type, prefix: str = "") -> set[str]:
    paths = set()
    for f in dataclasses.fields(cls):
        sub = _dataclass_type(cls, f.name)
        if sub is not None:
            paths |= _tuple_paths(sub, f"{prefix}{f.name}.")
        elif _is_tuple(cls, f.name):
            paths.add(prefix + f.name)
    return paths


def _listify(cls: type, args: list[str]) -> list[str]:
    """A list field given a plain value on the command line: `--data a` and `--data a,b` mean ['a'] and
    ['a', 'b'] (draccus alone would read a string as a tuple of its characters); `--data '[a,b]'` is YAML."""
    lists, out = _tuple_paths(cls), list(args)
    for i, a in enumerate(out):
        if not a.startswith("--"):
            continue
        key, eq, value = a[2:].partition("=")
        if key not in lists:
            continue
        if eq and not value.startswith("["):
            out[i] = f"--{key}=[{value}]"
        elif not eq and i + 1 < len(out) and not out[i + 1].startswith(("[", "--")):
            out[i + 1] = f"[{out[i + 1]}]"
    return out


def _dataclass_type(cls: type, name: str) -> type | None:
    import typing

    hint = typing.get_type_hints(cls)[name]
    return hint if dataclasses.is_dataclass(hint) else None


def _normalize_flags(args: Sequence[str]) -> list[str]:
    """`--max-episode-steps` -> `--max_episode_steps`: dashes and underscores both name a field."""
    out = []
    for a in args:
        if a.startswith("--"):
            key, eq, value = a[2:].partition("=")
            a = "--" + key.replace("-", "_") + eq + value
        out.append(a)
    return out


def parse(command: str, args: Sequence[str]) -> Any:
    """The command's config: dataclass defaults <- `--config FILE` <- flags."""
    import draccus
    import yaml
    from draccus.utils import DecodingError, DraccusException

    args = _normalize_flags(args)
    config_path = None
    if "--config" in args or any(a.startswith("--config=") for a in args):
        for i, a in enumerate(args):
            if a == "--config":
                if i + 1 >= len(args):
                    raise ConfigError("--config needs a file")
                config_path, args = args[i + 1], args[:i] + args[i + 2:]
                break
            if a.startswith("--config="):
                config_path, args = a.split("=", 1)[1], args[:i] + args[i + 1:]
                break
    cls = config_class(command)
    args = _listify(cls, args)
    config_file = None
    if config_path is not None:
        path = Path(config_path)
        if not path.is_file():
            raise ConfigError(f"config file {path} not found")
        try:
            tree = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path} is not valid YAML: {e}") from None
        if command in ("sft", "ppo") and isinstance(tree, dict) and isinstance(tree.get(command), dict) \
                and command not in {f.name for f in dataclasses.fields(cls)}:
            # a pipeline file given to one stage: that stage's section of it (the same settings as the pipeline)
            tree = tree[command]
            print(f"pirl-train {command}: using the `{command}:` section of {path}", file=sys.stderr)
        check_keys(cls, tree, str(path))
        # draccus reads the checked, normalised tree (a lone string for a list field becomes a one-item list)
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            yaml.safe_dump(tree, f)
        config_path = config_file = f.name
    try:
        return draccus.parse(config_class=cls, config_path=config_path, args=args, prog=f"pirl-train {command}",
                             exit_on_error=False)
    except DecodingError as e:
        raise ConfigError(f"{e}") from None
    except DraccusException as e:
        cause = e.__cause__ or e.__context__
        if isinstance(cause, (TypeError, ValueError)):  # a config's own validation (__post_init__)
            raise ConfigError(str(cause)) from None
        # a flag that names no field
        unknown = [a[2:].split("=")[0] for a in args if a.startswith("--") and a[2:].split("=")[0] not in
                   field_paths(cls)]
        close = difflib.get_close_matches(unknown[0], field_paths(cls), n=1) if unknown else []
        raise ConfigError(f"{e}" + (f"; did you mean --{close[0]}?" if close else "") +
                          f" (`pirl-train {command} --help` lists the fields)") from None
    except (TypeError, ValueError) as e:  # a config's own validation (__post_init__)
        raise ConfigError(str(e)) from None
    finally:
        if config_file is not None:
            Path(config_file).unlink(missing_ok=True)


def run(command: str, cfg: Any, progress: bool) -> None:
    if command == "smoke":
        from training.demo import run_demo

        run_demo(cfg, progress=progress)
    elif command == "demos":
        from training.data.collect import collect

        print(json.dumps(collect(cfg, progress=progress)))
    elif command == "sft":
        from training.sft.run import run_sft

        run_sft(cfg, progress=progress)
    elif command == "ppo":
        from training.ppo.run import run_ppo

        run_ppo(cfg, progress=progress)
    else:
        from pipeline.run import run_pipeline

        run_pipeline(cfg, progress=progress)


def usage() -> str:
    lines = [__doc__.strip(), "", "commands:"]
    lines += [f"  {name:<9} {text}" for name, text in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        close = difflib.get_close_matches(command, list(COMMANDS), n=1)
        print(f"pirl-train: unknown command {command!r}" + (f"; did you mean {close[0]!r}?" if close else "")
              + f" (commands: {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    try:
        cfg = parse(command, rest)
    except ConfigError as e:
        print(f"pirl-train {command}: {e}", file=sys.stderr)
        return 2
    run(command, cfg, progress=sys.stderr.isatty())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
