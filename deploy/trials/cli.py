"""pirl-trials: record real-world success trials of an engine and set them against its simulation evaluation.

    pirl-trials run --engine DIR --task PushCube-v1 --instruction "push the cube to the goal" --episodes 20 \\
        --out trials/pushcube.jsonl [--resume] [--time-limit 60]      # on the robot (the ROS graph running)
    pirl-trials run ... --dry-run [--outcomes outcomes.txt]            # through the ManiSkill sim arm
    pirl-eval-engine DIR --task PushCube-v1 --episodes 100 --out sim_eval.json
    pirl-trials report --real trials/*.jsonl --sim sim_eval.json --out report/ [--wandb]
"""

from __future__ import annotations

import argparse
import logging
import sys

from deploy.trials.log import KeyboardOperator, ScriptedOperator, TrialError, TrialLog, TrialSession


def _run(a: argparse.Namespace) -> None:
    if a.outcomes:
        operator = ScriptedOperator(a.outcomes)
    elif a.operator == "ros":
        RosServiceOperator = _ros("RosServiceOperator")  # noqa: N806
        operator = RosServiceOperator()
    else:
        operator = KeyboardOperator()
    if a.dry_run:
        from deploy.trials.log import DryRunRobot

        robot = DryRunRobot(a.engine, a.task, control_hz=a.control_hz, seed=a.seed)
    else:
        RosRobot = _ros("RosRobot")  # noqa: N806
        robot = RosRobot(camera_topic=a.camera_topic)
    try:
        session = TrialSession(robot, operator, TrialLog(a.out), a.engine, a.task, a.instruction)
        records = session.run(a.episodes, a.time_limit, resume=a.resume)
    finally:
        robot.close()
    wins = sum(r.outcome == "success" for r in records)
    print(f"{len(records)} episodes recorded this run ({wins} successes); log: {a.out}")


def _report(a: argparse.Namespace) -> None:
    from deploy.trials.report import build_report, upload_wandb, write_report

    report = build_report(a.real, a.sim or [], allow_mixed_engines=a.allow_mixed_engines)
    page = write_report(report, a.out)
    print("| task | instruction | real | sim | gap | Fisher p |\n| --- | --- | --- | --- | --- | --- |")
    for r in report["rows"]:
        sim, gap, p = "-", "-", "-"
        if "sim" in r:
            sim, gap, p = f"{r['sim']['rate']:.0%} ({r['sim']['n']})", f"{r['gap']:+.0%}", f"{r['fisher_p']:.3f}"
        print(f"| {r['task']} | {r['instruction']} | {r['real']['rate']:.0%} ({r['real']['n']}) | {sim} | {gap} | "
              f"{p} |")
    print(f"report: {page}")
    if a.wandb:
        upload_wandb(report, page.parent)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pirl-trials", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="drive and record trial episodes")
    r.add_argument("--engine", required=True)
    r.add_argument("--task", required=True)
    r.add_argument("--instruction", required=True)
    r.add_argument("--episodes", type=int, required=True)
    r.add_argument("--out", required=True, help="the trials log (JSONL, append-only)")
    r.add_argument("--resume", action="store_true", help="continue this session's count in an existing log")
    r.add_argument("--time-limit", type=float, default=60.0, help="seconds per episode")
    r.add_argument("--dry-run", action="store_true", help="the ManiSkill sim arm instead of the robot")
    r.add_argument("--outcomes", help="outcomes file (success|failure [note] per line) instead of the keyboard")
    r.add_argument("--operator", choices=["keyboard", "ros"], default="keyboard",
                   help="ros: judge through the pirl_trials_operator node's services (~/start, ~/stop, ~/success, "
                        "~/failure)")
    r.add_argument("--control-hz", type=float, default=20.0)
    r.add_argument("--seed", type=int, default=0, help="dry run: the first episode's scene seed")
    r.add_argument("--camera-topic", default="/camera/base_camera/image_raw")
    rep = sub.add_parser("report", help="real vs sim success report")
    rep.add_argument("--real", nargs="+", required=True)
    rep.add_argument("--sim", nargs="*")
    rep.add_argument("--out", default="trials_report")
    rep.add_argument("--allow-mixed-engines", action="store_true")
    rep.add_argument("--wandb", action="store_true", help="also log the report to Weights & Biases")
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    a = build_parser().parse_args(argv)
    try:
        (_run if a.command == "run" else _report)(a)
    except (TrialError, FileNotFoundError) as e:
        print(f"pirl-trials {a.command}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())


def _ros(name: str):
    """A class of pirl_ros.trials_ros (rclpy code lives under ros_ws), with what to do where ROS 2 is missing."""
    try:
        from pirl_ros import trials_ros
    except ImportError as e:
        raise TrialError(f"this needs ROS 2 and the pirl_ros package ({e}): source your ROS setup and ros_ws's "
                         "install (the robot image has both), or use --dry-run and --outcomes") from e
    return getattr(trials_ros, name)
