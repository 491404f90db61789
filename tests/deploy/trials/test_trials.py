"""pirl-trials: statistics against hand-computed values, a dry-run session through the sim arm with outcomes from
a file, resume, a crashed log, mixed engines refused, and the HTML report rendered in headless Chromium."""

import importlib.util
import json
import logging
import shutil
import subprocess

import numpy as np
import pytest

from core.stats import fisher_exact_p, wilson_interval
from deploy.trials.log import TrialError, TrialLog, TrialRecord, read_trials


def test_wilson_and_fisher_match_hand_computation():
    # Wilson 8/10: centre (8 + 1.96^2 / 2) / (10 + 1.96^2) = 0.71674, half-width 0.22658
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.49016, abs=1e-4) and hi == pytest.approx(0.94332, abs=1e-4)
    # Fisher [[8, 2], [1, 5]]: hypergeometric weights C(9,k) C(7,10-k) / C(16,10) for k = 3..9 are
    # 84, 882, 2646, 2940, 1260, 189, 7 (/ 8008); tables as or less likely than k = 8: 189 + 7 + 84 = 280.
    assert fisher_exact_p(8, 10, 1, 6) == pytest.approx(280 / 8008, rel=1e-9)
    assert fisher_exact_p(3, 4, 1, 4) == pytest.approx(34 / 70, rel=1e-9)  # the lady tasting tea: 0.4857


@pytest.fixture(scope="module")
def session(panda_engine_dir, tmp_path_factory):
    """A dry-run session of 3 episodes through the sim arm, outcomes from a file, then a sim evaluation."""
    pytest.importorskip("mani_skill", reason="dry runs need the sim arm (pirl[sim])")
    from deploy.sim.eval import run as sim_eval
    from deploy.trials.cli import main

    d = tmp_path_factory.mktemp("trials")
    (d / "outcomes.txt").write_text("success\nfailure knocked the cube over\nsuccess\nfailure\n")
    args = ["run", "--engine", str(panda_engine_dir), "--task", "PushCube-v1", "--instruction",
            "push the cube to the goal", "--out", str(d / "trials.jsonl"), "--time-limit", "0.75", "--dry-run",
            "--outcomes", str(d / "outcomes.txt")]
    assert main([*args, "--episodes", "3"]) == 0
    sim_eval(str(panda_engine_dir), ["PushCube-v1"], episodes=4, num_envs=2, num_executed=5, max_episode_steps=15,
             checkpoint=None, out=str(d / "sim_eval.json"))
    return d, args


@pytest.mark.slow
def test_dry_run_session_writes_a_valid_log_and_media(session):
    d, _ = session
    records = read_trials(d / "trials.jsonl")
    assert [r.episode for r in records] == [0, 1, 2]
    assert [r.outcome for r in records] == ["success", "failure", "success"]
    assert records[1].note == "knocked the cube over" and records[0].robot == "dry-run"
    assert len({r.engine_sha256 for r in records}) == 1 and len(records[0].engine_sha256) == 64
    for r in records:
        assert r.stop_reason in ("time_limit", "task_done") and 0 < r.duration_s <= 0.75
        actions = np.load(d / r.actions, allow_pickle=False)
        assert actions.shape[1] == 4 and len(actions) == round(r.duration_s * 20)
        import cv2

        cap = cv2.VideoCapture(str(d / r.video))
        ok, frame = cap.read()
        assert ok and frame.shape == (32, 32, 3)


def test_resume_continues_the_count_and_a_second_session_is_refused(session, capsys):
    from deploy.trials.cli import main

    d, args = session
    assert main([*args, "--episodes", "4"]) == 2
    assert "already holds trials: pass --resume" in capsys.readouterr().err
    snapshot = (d / "trials.jsonl").read_text()
    try:
        # the outcomes file is read from its start again: its 1st line judges episode 3
        assert main([*args, "--episodes", "4", "--resume"]) == 0
        records = read_trials(d / "trials.jsonl")
        assert [r.episode for r in records] == [0, 1, 2, 3] and records[3].outcome == "success"
    finally:
        (d / "trials.jsonl").write_text(snapshot)


def test_report_numbers_plots_and_html_in_headless_chromium(session, tmp_path, monkeypatch):
    from deploy.trials.cli import main

    d, _ = session
    out = tmp_path / "report"
    wandb = ["--wandb"] if importlib.util.find_spec("wandb") else []
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert main(["report", "--real", str(d / "trials.jsonl"), "--sim", str(d / "sim_eval.json"),
                 "--out", str(out), *wandb]) == 0
    if wandb:  # logged offline into the report directory, never touching the network
        assert list((out / "wandb").glob("offline-run-*"))
    report = json.loads((out / "report.json").read_text())
    overall = next(r for r in report["rows"] if r["task"] == "PushCube-v1" and r["instruction"] == "(all)")
    assert overall["real"]["successes"] == 2 and overall["real"]["n"] == 3
    sim = json.loads((d / "sim_eval.json").read_text())["engine"]["overall"]
    assert overall["sim"]["n"] == sim["n"] and overall["sim"]["rate"] == pytest.approx(sim["success"])
    assert overall["gap"] == pytest.approx(sim["success"] - 2 / 3)
    k_sim = round(sim["success"] * sim["n"])
    assert overall["fisher_p"] == pytest.approx(fisher_exact_p(2, 3, k_sim, sim["n"]))
    assert overall["real"]["ci95"] == pytest.approx(list(wilson_interval(2, 3)))
    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page and "data:image/jpeg;base64," in page  # plots and thumbnails inline

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (scripts/install_system_deps.sh installs Debian's chromium)")
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'chrome'}", f"--screenshot={shot}", "--window-size=1200,1400",
                    (out / "report.html").as_uri()], check=True, capture_output=True, timeout=120)
    import cv2

    img = cv2.cvtColor(cv2.imread(str(shot)), cv2.COLOR_BGR2RGB).astype(int)
    red = (np.abs(img - [214, 39, 40]).sum(-1) < 30).sum()  # the "real" bars
    blue = (np.abs(img - [31, 119, 180]).sum(-1) < 30).sum()  # the "sim" bars
    assert red > 500 and blue > 500, (red, blue)


def test_truncated_log_is_read_up_to_the_crash_with_a_warning(session, tmp_path, caplog):
    d, _ = session
    crashed = tmp_path / "crashed.jsonl"
    crashed.write_text((d / "trials.jsonl").read_text() + '{"engine_sha256": "ab')
    with caplog.at_level(logging.WARNING, logger="pirl.trials"):
        records = read_trials(crashed)
    assert len(records) == 3 and "last line (4) is incomplete" in caplog.text
    edited = tmp_path / "edited.jsonl"
    lines = (d / "trials.jsonl").read_text().splitlines()
    edited.write_text("\n".join([lines[0], "not json", lines[1]]) + "\n")
    with pytest.raises(TrialError, match="edited.jsonl:2 is not a trial record"):
        read_trials(edited)


def test_trials_of_different_engines_are_not_compared_unless_asked(session, tmp_path):
    from deploy.trials.report import build_report

    d, _ = session
    other = tmp_path / "other.jsonl"
    rec = json.loads((d / "trials.jsonl").read_text().splitlines()[0])
    other.write_text(json.dumps({**rec, "engine_sha256": "f" * 64}) + "\n")
    with pytest.raises(TrialError, match="2 different engines .* --allow-mixed-engines"):
        build_report([d / "trials.jsonl", other], [d / "sim_eval.json"])
    report = build_report([d / "trials.jsonl", other], [d / "sim_eval.json"], allow_mixed_engines=True)
    assert report["mixed_engines"] and report["episodes"] == 4


def _rec(episode: int) -> TrialRecord:
    return TrialRecord("e" * 64, "PushCube-v1", "push the cube", episode, "2026-12-05T10:00:00+00:00", 1.5,
                       "success", "café", "time_limit", None, None, "dry-run")


@pytest.mark.parametrize("fragment", [
    b'{"engine_sha256": "eee',  # cut mid-record
    '{"note": "caf\u00e9'.encode()[:-1],  # cut inside a UTF-8 character
    b"\x00\x00\x00\x00",  # a filesystem that zero-filled the unwritten block
    b'{"engine_sha256": "eee"}\n',  # a whole line that is still not a record
])
def test_a_torn_tail_is_quarantined_before_appending(tmp_path, fragment, caplog):
    log = TrialLog(tmp_path / "t.jsonl")
    log.append(_rec(0))
    log.append(_rec(1))
    sound = log.path.read_bytes()
    log.path.write_bytes(sound + fragment)
    with caplog.at_level(logging.WARNING, logger="pirl.trials"):
        log.append(_rec(2))  # append repairs first
    assert "torn by a crash" in caplog.text and "after the 2 whole records" in caplog.text
    assert log.path.read_bytes().startswith(sound)
    assert [r.episode for r in read_trials(log.path)] == [0, 1, 2]
    assert log.quarantine.read_bytes().rstrip(b"\n") == fragment.rstrip(b"\n")  # nothing lost
    assert log.repair() is None  # sound now


def test_a_whole_record_without_its_newline_is_kept(tmp_path):
    log = TrialLog(tmp_path / "t.jsonl")
    log.append(_rec(0))
    log.path.write_bytes(log.path.read_bytes().rstrip(b"\n"))  # the crash came between record and newline
    assert "completed it" in log.repair()
    log.append(_rec(1))
    assert [r.episode for r in read_trials(log.path)] == [0, 1] and not log.quarantine.exists()


def test_a_sound_log_is_never_touched(tmp_path):
    log = TrialLog(tmp_path / "t.jsonl")
    assert log.repair() is None  # no log yet
    log.append(_rec(0))
    before = log.path.read_bytes()
    assert log.repair() is None and log.path.read_bytes() == before and not log.quarantine.exists()


def test_resume_after_a_crash_mid_write_continues_cleanly(session, tmp_path, capsys, caplog):
    from deploy.trials.cli import main

    d, args = session
    log = tmp_path / "trials.jsonl"
    whole = (d / "trials.jsonl").read_bytes()
    log.write_bytes(whole + whole.splitlines(keepends=True)[2][:57])  # episode 3 was being written
    args = [*args[: args.index("--out") + 1], str(log), *args[args.index("--out") + 2:]]
    with caplog.at_level(logging.WARNING, logger="pirl.trials"):
        assert main([*args, "--episodes", "4", "--resume"]) == 0
    assert "moved it to" in caplog.text and str(log) + ".torn" in caplog.text
    records = read_trials(log)
    assert [r.episode for r in records] == [0, 1, 2, 3]
    assert len((log.parent / "trials.jsonl.torn").read_bytes()) == 58  # the fragment and a newline
    assert main(["report", "--real", str(log), "--sim", str(d / "sim_eval.json"), "--out", str(tmp_path / "r")]) == 0
    with caplog.at_level(logging.WARNING, logger="pirl.trials"):
        caplog.clear()
        assert main([*args, "--episodes", "4", "--resume"]) == 0  # a second resume: nothing to repair or run
    assert "torn" not in caplog.text and len(read_trials(log)) == 4


def test_ros_parts_live_under_ros_ws_and_say_what_they_need():
    """RosRobot and RosServiceOperator are pirl_ros code (rclpy stays under ros_ws); without ROS 2 a session that
    asks for them stops with what to do instead."""
    import importlib.util

    from deploy.trials.cli import _ros
    from deploy.trials.log import TrialError

    if importlib.util.find_spec("rclpy") is not None:
        pytest.skip("ROS 2 is installed here: the ROS parts would load")
    for name in ("RosRobot", "RosServiceOperator"):
        with pytest.raises(TrialError, match="needs ROS 2 and the pirl_ros package.*--dry-run"):
            _ros(name)
