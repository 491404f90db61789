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
        if isinstance(default, bool):
            parser.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes"), default=default,
                                help=f"(default: {default})")
        else:
            parser.add_argument(flag, type=type(default), default=default, help=f"(default: {default})")


def config_from_args(cls: type, args: argparse.Namespace) -> Any:
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


def main(argv: Sequence[str] | None = None) -> int:
    from training.data.collect import CollectConfig
    from training.demo import DemoConfig

    parser = argparse.ArgumentParser(prog="pirl-train", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="the embedded CPU default: tiny policy, SFT, samplers, checkpoint")
    add_config_args(demo, DemoConfig)
    demos = sub.add_parser("demos", help="collect scripted demonstrations into a dataset directory")
    add_config_args(demos, CollectConfig)
    args = parser.parse_args(argv)
    if args.command == "demo":
        from training.demo import run_demo

        run_demo(config_from_args(DemoConfig, args), progress=sys.stderr.isatty())
    elif args.command == "demos":
        import json

        from training.data.collect import collect

        summary = collect(config_from_args(CollectConfig, args), progress=sys.stderr.isatty())
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
