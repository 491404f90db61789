"""`pirl-train`: the training entry point. Subcommands grow with the project (sft, ppo, eval)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from typing import Any


def add_config_args(parser: argparse.ArgumentParser, cls: type) -> None:
    """One `--field` option per field of a flat frozen config dataclass, typed from its default."""
    for f in dataclasses.fields(cls):
        default = f.default
        flag = "--" + f.name.replace("_", "-")
        if default is None:  # an optional number
            parser.add_argument(flag, type=lambda s: None if s.lower() == "none" else float(s), default=None,
                                help="(default: None)")
        elif isinstance(default, bool):
            parser.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes"), default=default,
                                help=f"(default: {default})")
        else:
            parser.add_argument(flag, type=type(default), default=default, help=f"(default: {default})")


def config_from_args(cls: type, args: argparse.Namespace) -> Any:
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


def main(argv: Sequence[str] | None = None) -> int:
    from training.data.collect import CollectConfig
    from training.demo import DemoConfig
    from training.ppo.run import PPORunConfig
    from training.ppo.train import PPOConfig
    from training.sft_run import SFTRunConfig

    parser = argparse.ArgumentParser(prog="pirl-train", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="the embedded CPU default: tiny policy, SFT, samplers, checkpoint")
    add_config_args(demo, DemoConfig)
    demos = sub.add_parser("demos", help="collect scripted demonstrations into a dataset directory")
    add_config_args(demos, CollectConfig)
    sft = sub.add_parser("sft", help="few-shot flow-matching SFT from demo datasets")
    add_config_args(sft, SFTRunConfig)
    ppo = sub.add_parser("ppo", help="Flow-Noise / Flow-SDE PPO from an SFT checkpoint in ManiSkill")
    add_config_args(ppo, PPORunConfig)
    add_config_args(ppo, PPOConfig)
    args = parser.parse_args(argv)
    if args.command == "demo":
        from training.demo import run_demo

        run_demo(config_from_args(DemoConfig, args), progress=sys.stderr.isatty())
    elif args.command == "demos":
        import json

        from training.data.collect import collect

        summary = collect(config_from_args(CollectConfig, args), progress=sys.stderr.isatty())
        print(json.dumps(summary))
    elif args.command == "sft":
        from training.sft_run import run_sft

        run_sft(config_from_args(SFTRunConfig, args), progress=sys.stderr.isatty())
    elif args.command == "ppo":
        from training.ppo.run import run_ppo

        run_ppo(config_from_args(PPORunConfig, args), config_from_args(PPOConfig, args),
                progress=sys.stderr.isatty())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
