"""pirl-calibrate: measure the real camera and put the simulated one in the same place.

    pirl-calibrate intrinsics views/*.png --board board.yaml --out intrinsics.json
    pirl-calibrate intrinsics --realsense [SERIAL] --out intrinsics.json          # factory intrinsics
    pirl-calibrate capture --board board.yaml --camera realsense: --poses-from-tf panda_link0 panda_hand --out samples/
    pirl-calibrate handeye --samples samples/ --mode eye-to-hand --intrinsics intrinsics.json --board board.yaml \\
        --out handeye.json
    pirl-calibrate write --intrinsics intrinsics.json --handeye handeye.json --out camera.yaml
    pirl-calibrate check --camera camera.yaml --real photo.png --sim-task PushCube-v1 [--refine] --out check.png
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from calibration.board import Board, CalibrationError


def _write_json(path: str | Path, data: dict) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _read_rgb(path: str | Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise CalibrationError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _intrinsics(a: argparse.Namespace) -> dict:
    from calibration.intrinsics import calibrate_intrinsics, realsense_intrinsics

    if a.realsense is not None:
        result = realsense_intrinsics(a.realsense or None, a.width, a.height, playback=a.playback)
        out = {**result.to_dict(), "source": "realsense factory"}
    else:
        if not a.images or not a.board:
            raise CalibrationError("give board images and --board board.yaml (or --realsense)")
        result = calibrate_intrinsics([_read_rgb(p) for p in a.images], Board.load(a.board),
                                      names=[Path(p).name for p in a.images], max_view_error_px=a.max_view_error)
        out = result.to_dict()
        print(f"{len(result.view_errors)} views kept, {len(result.rejected)} rejected; RMS {result.rms:.3f} px")
        for name, why in result.rejected.items():
            print(f"  rejected {name}: {why}")
    K = np.asarray(out["K"])
    print(f"fx {K[0, 0]:.2f} fy {K[1, 1]:.2f} cx {K[0, 2]:.2f} cy {K[1, 2]:.2f}  dist {np.round(out['distortion'], 4)}")
    _write_json(a.out, out)
    return out


def _handeye(a: argparse.Namespace) -> dict:
    from calibration.capture import read_samples
    from calibration.handeye import board_pose, solve_hand_eye

    intr = json.loads(Path(a.intrinsics).read_text())
    K, dist = np.asarray(intr["K"]), np.asarray(intr["distortion"])
    board = Board.load(a.board)
    names, T_ee, T_board = [], [], []
    skipped = {}
    for path, T in read_samples(a.samples):
        det = board.detect(_read_rgb(path))
        if det is None:
            skipped[path.name] = "no board found"
            continue
        names.append(path.name)
        T_ee.append(T)
        T_board.append(board_pose(det, K, dist))
    result = solve_hand_eye(T_ee, T_board, a.mode, names=names, method=a.method)
    out = {**result.summary(), "rejected": {**skipped, **result.rejected},
           "per_method": {m: X.tolist() for m, X in result.per_method.items()}}
    s = result.summary()
    print(f"{result.name} ({result.method}, {s['samples_used']} samples): residual {s['residual_mm_rms']:.2f} mm / "
          f"{s['residual_deg_rms']:.3f} deg RMS; solvers agree within {result.solver_spread_mm:.2f} mm / "
          f"{result.solver_spread_deg:.3f} deg")
    for name, why in out["rejected"].items():
        print(f"  rejected {name}: {why}")
    _write_json(a.out, out)
    return out


def _write(a: argparse.Namespace) -> None:
    from training.envs.camera import CameraSpec

    intr = json.loads(Path(a.intrinsics).read_text())
    he = json.loads(Path(a.handeye).read_text())
    quality = {"intrinsics_rms_px": intr.get("rms_px"), "intrinsics_source": intr.get("source"),
               "handeye_mode": he["mode"], "handeye_method": he["method"],
               "handeye_residual_mm_rms": he["residual_mm_rms"], "handeye_residual_deg_rms": he["residual_deg_rms"],
               "handeye_solver_spread_mm": he["solver_spread_mm"], "handeye_samples": he["samples_used"]}
    if he["mode"] == "eye-to-hand":
        T = np.asarray(he["T_base_camera"])
    else:
        if not a.T_base_ee:
            raise CalibrationError("eye-in-hand gives T_ee_camera: pass --T-base-ee POSE.json (the end-effector pose "
                                   "the policy's camera view is taken from, e.g. the home pose) for T_base_camera")
        T = np.asarray(json.loads(Path(a.T_base_ee).read_text()), float) @ np.asarray(he["T_ee_camera"])
        quality["T_ee_camera"] = he["T_ee_camera"]
    spec = CameraSpec(a.name, int(intr["width"]), int(intr["height"]), np.asarray(intr["K"]), T,
                      np.asarray(intr["distortion"]), quality)
    spec.save(a.out)
    print(f"wrote {a.out}: {spec.width}x{spec.height}, camera at {np.round(T[:3, 3], 4)} m in the base frame")


def _check(a: argparse.Namespace) -> None:
    from calibration.check import SimCameraView, check_alignment
    from training.envs.camera import CameraSpec

    spec = CameraSpec.load(a.camera)
    real = _read_rgb(a.real)
    view = SimCameraView(a.sim_task, spec, seed=a.seed, qpos=np.asarray(a.qpos) if a.qpos else None)
    try:
        r = check_alignment(view, real, refine=a.refine)
    finally:
        view.close()
    panels = [r.overlay_before] if r.overlay_after is None else [r.overlay_before, r.overlay_after]
    cv2.imwrite(str(a.out), cv2.cvtColor(np.concatenate(panels, axis=0), cv2.COLOR_RGB2BGR))
    print(f"alignment (mean edge distance, px): {r.score_before:.2f}" +
          ("" if r.score_after is None else f" -> {r.score_after:.2f} after refinement (pose moved "
                                            f"{r.delta_mm:.1f} mm, {r.delta_deg:.2f} deg)") + f"; overlay: {a.out}")
    if a.refine and a.write_refined:
        CameraSpec(spec.name, spec.width, spec.height, spec.K, r.T_base_camera, spec.distortion,
                   {**spec.quality, "render_compare_score_px": r.score_after}).save(a.write_refined)
        print(f"refined camera file: {a.write_refined}")


def _capture(a: argparse.Namespace) -> None:
    from calibration.capture import CaptureSession, RosTfPose, poses_from_file
    from deploy.camera_io import OpenCVReader, RealSenseReader

    kind, _, arg = a.camera.partition(":")
    if kind == "realsense":
        camera = RealSenseReader(serial=arg or None, width=a.width, height=a.height)
    elif kind in ("opencv", "video"):
        camera = OpenCVReader(arg or "0")
    else:
        raise CalibrationError(f"--camera {a.camera!r}: use realsense:[SERIAL], opencv:INDEX_OR_PATH or video:FILE")
    pose = poses_from_file(a.poses) if a.poses else RosTfPose(*a.poses_from_tf) if a.poses_from_tf else None
    if pose is None:
        raise CalibrationError("give --poses FILE or --poses-from-tf BASE_FRAME EE_FRAME")
    session = CaptureSession(Board.load(a.board), a.out)
    show = not a.auto and bool(os.environ.get("DISPLAY"))
    print("SPACE: capture, q: quit" if show else "capturing every frame with the board in view (--auto)")
    try:
        while a.max_samples is None or len(session.poses) < a.max_samples:
            try:
                frame = camera.read()
            except Exception as e:  # noqa: BLE001 - the end of a video file or an unplugged camera ends capture
                print(f"camera: {e}")
                break
            if show:
                cv2.imshow("pirl-calibrate capture", session.preview(frame.rgb))
                key = cv2.waitKey(30) & 0xFF
                if key == ord("q"):
                    break
                if key != ord(" "):
                    continue
            result = session.offer(frame.rgb, pose())
            print(result.message)
    finally:
        camera.close()
        if show:
            cv2.destroyAllWindows()
    print(f"{len(session.poses)} samples in {a.out}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pirl-calibrate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    i = sub.add_parser("intrinsics", help="camera matrix and distortion from ChArUco views or a RealSense")
    i.add_argument("images", nargs="*")
    i.add_argument("--board")
    i.add_argument("--realsense", nargs="?", const="", default=None, metavar="SERIAL")
    i.add_argument("--playback", help="a RealSense .db3 recording instead of a live camera")
    i.add_argument("--width", type=int, default=640)
    i.add_argument("--height", type=int, default=480)
    i.add_argument("--max-view-error", type=float, default=1.0, help="reject views above this RMS (px)")
    i.add_argument("--out", default="intrinsics.json")
    h = sub.add_parser("handeye", help="T_base_camera or T_ee_camera from (board image, ee pose) samples")
    h.add_argument("--samples", required=True)
    h.add_argument("--mode", required=True, choices=["eye-to-hand", "eye-in-hand"])
    h.add_argument("--intrinsics", required=True)
    h.add_argument("--board", required=True)
    h.add_argument("--method", default="park", choices=["park", "tsai", "horaud", "andreff", "daniilidis"])
    h.add_argument("--out", default="handeye.json")
    c = sub.add_parser("capture", help="guided capture of board images and end-effector poses")
    c.add_argument("--board", required=True)
    c.add_argument("--camera", default="realsense:")
    c.add_argument("--width", type=int, default=640)
    c.add_argument("--height", type=int, default=480)
    c.add_argument("--poses", help="file with one T_base_ee (4x4 JSON) per line, in capture order")
    c.add_argument("--poses-from-tf", nargs=2, metavar=("BASE_FRAME", "EE_FRAME"))
    c.add_argument("--auto", action="store_true", help="no window: offer every frame")
    c.add_argument("--max-samples", type=int)
    c.add_argument("--out", required=True)
    w = sub.add_parser("write", help="camera.yaml from intrinsics and hand-eye results")
    w.add_argument("--intrinsics", required=True)
    w.add_argument("--handeye", required=True)
    w.add_argument("--name", default="base_camera")
    w.add_argument("--T-base-ee", dest="T_base_ee", help="eye-in-hand: the ee pose (4x4 JSON) the view is taken at")
    w.add_argument("--out", default="camera.yaml")
    k = sub.add_parser("check", help="overlay the simulated scene from camera.yaml on a real image; score; refine")
    k.add_argument("--camera", required=True)
    k.add_argument("--real", required=True)
    k.add_argument("--sim-task", default="PushCube-v1")
    k.add_argument("--seed", type=int, default=0)
    k.add_argument("--qpos", type=float, nargs="+", help="the robot's joint positions in the real image")
    k.add_argument("--refine", action="store_true")
    k.add_argument("--write-refined", help="write the refined camera.yaml here")
    k.add_argument("--out", default="check.png")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        {"intrinsics": _intrinsics, "handeye": _handeye, "write": _write, "check": _check,
         "capture": _capture}[a.command](a)
    except (CalibrationError, FileNotFoundError, ValueError) as e:
        print(f"pirl-calibrate {a.command}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
