"""`pirl-train`: the training entry point.

    pirl-train demos    --task PickCube-v1 --episodes 20 --out data/pickcube     scripted demonstrations
    pirl-train sft      --data data/a,data/b --out runs/sft                       few-shot flow-matching SFT
    pirl-train ppo      --init runs/sft/checkpoint --out runs/ppo                 Flow-Noise / Flow-SDE PPO
    pirl-train pipeline --config configs/cpu_demo.yaml --out runs/demo            all of the above + report
    pirl-train smoke    --out runs/smoke                                          policy smoke test, no simulator

Every option comes from a typed config dataclass; `--config FILE` (YAML or JSON) sets them per section, and
flags given on the command line override the file. Unknown keys are errors that name the closest valid key.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def add_config_args(parser: argparse.ArgumentParser, cls: type) -> None:
    """One `--field` option per field of a flat frozen config dataclass. Defaults are left to the dataclass
    (argparse.SUPPRESS), so we can tell which flags were given explicitly."""
    for f in dataclasses.fields(cls):
        default = f.default
        flag = "--" + f.name.replace("_", "-")
        kw: dict[str, Any] = {"default": argparse.SUPPRESS, "help": f"(default: {default})", "dest": f.name}
        if default is None or "None" in str(f.type):  # an optional number: "none" unsets it
            parser.add_argument(flag, type=lambda s: None if s.lower() in ("none", "null") else float(s), **kw)
        elif isinstance(default, tuple):  # comma-separated
            parser.add_argument(flag, type=lambda s: tuple(x for x in s.split(",") if x), **kw)
        elif isinstance(default, bool):
            parser.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes"), **kw)
        else:
            parser.add_argument(flag, type=type(default), **kw)


def load_config_file(path: str | Path) -> dict[str, dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file {path} not found")
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of sections (demos, sft, ppo_run, ppo, pipeline)")
    return data


def build_config(cls: type, section: str, file_cfg: dict[str, dict[str, Any]], args: argparse.Namespace,
                 source: str = "the config file") -> Any:
    """cls defaults <- file section <- explicit flags; unknown keys name the closest valid one."""
    names = [f.name for f in dataclasses.fields(cls)]
    values = dict(file_cfg.get(section) or {})
    for key in values:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {names}"
            raise ValueError(f"unknown key {key!r} in section {section!r} of {source}{hint}")
    values.update({k: v for k, v in vars(args).items() if k in names})
    for f in dataclasses.fields(cls):  # YAML lists for tuple fields
        if isinstance(values.get(f.name), list) and isinstance(f.default, tuple):
            values[f.name] = tuple(values[f.name])
    return cls(**values)


def main(argv: Sequence[str] | None = None) -> int:
    from training.data.collect import CollectConfig
    from training.demo import DemoConfig
    from training.pipeline import PipelineConfig
    from training.ppo.run import PPORunConfig
    from training.ppo.train import PPOConfig
    from training.sft_run import SFTRunConfig

    parser = argparse.ArgumentParser(prog="pirl-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sections = {
        "demos": [("demos", CollectConfig)],
        "sft": [("sft", SFTRunConfig)],
        "ppo": [("ppo_run", PPORunConfig), ("ppo", PPOConfig)],
        "pipeline": [("pipeline", PipelineConfig)],
        "smoke": [("smoke", DemoConfig)],
    }
    helps = {"demos": "collect scripted demonstrations into a dataset directory",
             "sft": "few-shot flow-matching SFT from demo datasets",
             "ppo": "Flow-Noise / Flow-SDE PPO from an SFT checkpoint in ManiSkill (torchrun for several ranks)",
             "pipeline": "demos -> SFT -> PPO -> evaluation of both on the same seeds -> table and plots",
             "smoke": "policy smoke test on synthetic data (no simulator)"}
    for name, secs in sections.items():
        p = sub.add_parser(name, help=helps[name])
        p.add_argument("--config", default=None, help="YAML/JSON file with sections " + ", ".join(s for s, _ in secs))
        for _, cls in secs:
            add_config_args(p, cls)
    args = parser.parse_args(argv)
    file_cfg = load_config_file(args.config) if args.config else {}
    source = args.config or "the config file"
    cfgs = [build_config(cls, sec, file_cfg, args, source) for sec, cls in sections[args.command]]
    progress = sys.stderr.isatty()
    if args.command == "smoke":
        from training.demo import run_demo

        run_demo(cfgs[0], progress=progress)
    elif args.command == "demos":
        from training.data.collect import collect

        print(json.dumps(collect(cfgs[0], progress=progress)))
    elif args.command == "sft":
        from training.sft_run import run_sft

        run_sft(cfgs[0], progress=progress)
    elif args.command == "ppo":
        from training.ppo.run import run_ppo

        run_ppo(cfgs[0], cfgs[1], progress=progress)
    elif args.command == "pipeline":
        from training.pipeline import run_pipeline

        run_pipeline(cfgs[0], file_cfg, progress=progress)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
