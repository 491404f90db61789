"""pirl-calibrate: measure the real camera and put the simulated one in the same place.

    pirl-calibrate intrinsics views/*.png --board board.yaml --out intrinsics.json
    pirl-calibrate intrinsics --realsense [SERIAL] --out intrinsics.json          # factory intrinsics
    pirl-calibrate capture --board board.yaml --camera realsense: --poses-from-tf panda_link0 panda_hand --out samples/
    pirl-calibrate handeye --samples samples/ --mode eye-to-hand --board board.yaml [--intrinsics intrinsics.json] \\
        [--solver joint|two-step] [--distortion k3|no-k3|rational] --out handeye.json
    pirl-calibrate write --handeye handeye.json --out camera.yaml
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
from calibration.refine import DISTORTION_MODELS, SOLVERS


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
                                      names=[Path(p).name for p in a.images], max_view_error_px=a.max_view_error,
                                      distortion_model=a.distortion)
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
    from calibration.intrinsics import calibrate_intrinsics
    from calibration.refine import calibrate_hand_eye

    board = Board.load(a.board)
    names, T_ee, dets, images = [], [], [], []
    skipped = {}
    for path, T in read_samples(a.samples):
        img = _read_rgb(path)
        det = board.detect(img)
        if det is None:
            skipped[path.name] = "no board found"
            continue
        names.append(path.name)
        T_ee.append(T)
        dets.append(det)
        images.append(img)
    if not images:
        raise CalibrationError(f"no board found in any sample of {a.samples}: check board.yaml against the "
                               "printed board")
    size = (images[0].shape[1], images[0].shape[0])
    if a.intrinsics:
        intr = json.loads(Path(a.intrinsics).read_text())
        if (intr["width"], intr["height"]) != size:
            raise CalibrationError(f"{a.intrinsics} is for {intr['width']}x{intr['height']} images, the samples are "
                                   f"{size[0]}x{size[1]}: calibrate the camera mode the samples were taken in")
        K, dist, source = np.asarray(intr["K"]), np.asarray(intr["distortion"]), intr.get("source", a.intrinsics)
    elif a.fix_intrinsics:
        raise CalibrationError("--fix-intrinsics keeps the intrinsics of --intrinsics FILE: give one")
    else:  # the samples' own views start the intrinsics; the joint fit refines them with the robot's help
        intr = calibrate_intrinsics(images, board, names, max_view_error_px=a.outlier_px,
                                    distortion_model=a.distortion)
        K, dist, source = intr.K, intr.distortion, "hand-eye samples (calibrateCamera)"
    result = calibrate_hand_eye(dets, T_ee, a.mode, size, K, dist, names, solver=a.solver, method=a.method,
                                distortion_model=a.distortion, fix_intrinsics=a.fix_intrinsics,
                                outlier_px=a.outlier_px, outlier_mm=a.outlier_mm, outlier_deg=a.outlier_deg)
    out = {**result.to_dict(), "intrinsics_start": source}
    out["rejected"] = {**skipped, **out["rejected"]}
    name = "T_base_camera" if a.mode == "eye-to-hand" else "T_ee_camera"
    if result.solver == "joint":
        sg, lo = out["sigma"], out["leave_out"]
        print(f"{name} (joint refinement of intrinsics, {out['distortion_model']} distortion and pose over "
              f"{out['samples_used']} samples): reprojection RMS {out['reprojection_rms_px']:.3f} px; 1-sigma "
              f"{sg['position_mm']:.2f} mm / {sg['rotation_deg']:.3f} deg" +
              (f"; jackknife over fifths {lo['position_mm']:.2f} mm / {lo['rotation_deg']:.3f} deg" if lo else ""))
        Kr = result.K
        print(f"  fx {Kr[0, 0]:.2f} fy {Kr[1, 1]:.2f} cx {Kr[0, 2]:.2f} cy {Kr[1, 2]:.2f}  dist "
              f"{np.round(result.distortion, 4)}")
    else:
        print(f"{name} ({out['method']}, {out['samples_used']} samples): pose-consistency residual "
              f"{out['residual_mm_rms']:.2f} mm / {out['residual_deg_rms']:.3f} deg RMS (not an error bound); solvers "
              f"agree within {out['solver_spread_mm']:.2f} mm / {out['solver_spread_deg']:.3f} deg")
    for sample, why in out["rejected"].items():
        print(f"  rejected {sample}: {why}")
    _write_json(a.out, out)
    return out


def _write(a: argparse.Namespace) -> None:
    from core.camera import CameraSpec

    he = json.loads(Path(a.handeye).read_text())
    if "K" in he:  # the hand-eye step used (and, jointly, refined) these intrinsics
        intr = {"width": he["width"], "height": he["height"], "K": he["K"], "distortion": he["distortion"],
                "source": he.get("intrinsics_start")}
    elif a.intrinsics:
        intr = json.loads(Path(a.intrinsics).read_text())
    else:
        raise CalibrationError(f"{a.handeye} holds no intrinsics (an older hand-eye file): pass --intrinsics FILE")
    quality = {"intrinsics_source": intr.get("source"), "handeye_mode": he["mode"],
               "handeye_solver": he.get("solver", "two-step"), "handeye_samples": he["samples_used"]}
    if quality["handeye_solver"] == "joint":
        sg, lo = he["sigma"], he.get("leave_out") or {}
        quality.update({
            "distortion_model": he["distortion_model"], "reprojection_rms_px": he["reprojection_rms_px"],
            # 1-sigma from the refinement's covariance (corner noise alone; position as the radius of the three
            # axes together), and the jackknife standard error over fifths of the samples (it also sees errors
            # shared by all corners of one sample, e.g. a robot pose slightly off).
            "position_sigma_mm": sg["position_mm"], "rotation_sigma_deg": sg["rotation_deg"],
            "principal_point_sigma_px": max(sg.get("cx_px", 0.0), sg.get("cy_px", 0.0)),
            "focal_sigma_px": max(sg.get("fx_px", 0.0), sg.get("fy_px", 0.0)),
            "jackknife_position_mm": lo.get("position_mm"), "jackknife_rotation_deg": lo.get("rotation_deg"),
            "handeye_rejected": sorted(he.get("rejected", {}))})
    else:
        quality.update({"intrinsics_rms_px": intr.get("rms_px"), "handeye_method": he["method"],
                        "handeye_consistency_mm_rms": he["residual_mm_rms"],
                        "handeye_consistency_deg_rms": he["residual_deg_rms"],
                        "handeye_solver_spread_mm": he["solver_spread_mm"],
                        "note": "two-step: consistency residuals and solver spread are not error bounds"})
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
    from core.camera import CameraSpec

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
    from calibration.capture import CaptureSession, poses_from_file
    from deploy.robot.camera_io import OpenCVReader, RealSenseReader

    kind, _, arg = a.camera.partition(":")
    if kind == "realsense":
        camera = RealSenseReader(serial=arg or None, width=a.width, height=a.height)
    elif kind in ("opencv", "video"):
        camera = OpenCVReader(arg or "0")
    else:
        raise CalibrationError(f"--camera {a.camera!r}: use realsense:[SERIAL], opencv:INDEX_OR_PATH or video:FILE")
    pose = poses_from_file(a.poses) if a.poses else _tf_pose(*a.poses_from_tf) if a.poses_from_tf else None
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
    i.add_argument("--distortion", choices=sorted(DISTORTION_MODELS), default="no-k3",
                   help="lens model: k1 k2 p1 p2 (no-k3, default: few views rarely pin down k3), + k3, or rational")
    i.add_argument("--out", default="intrinsics.json")
    h = sub.add_parser("handeye", help="T_base_camera or T_ee_camera from (board image, ee pose) samples")
    h.add_argument("--samples", required=True)
    h.add_argument("--mode", required=True, choices=["eye-to-hand", "eye-in-hand"])
    h.add_argument("--intrinsics", help="start from these intrinsics (default: calibrate from the samples' views)")
    h.add_argument("--board", required=True)
    h.add_argument("--solver", choices=SOLVERS, default="joint",
                   help="joint (default): refine intrinsics, distortion and both poses over every corner, from the "
                        "two-step start; two-step: calibrateHandEye with the intrinsics held fixed")
    h.add_argument("--method", default="park", choices=["park", "tsai", "horaud", "andreff", "daniilidis"],
                   help="OpenCV's hand-eye solver for the two-step (start) solution")
    h.add_argument("--distortion", choices=sorted(DISTORTION_MODELS), default="k3",
                   help="lens model: k1 k2 p1 p2 (no-k3), + k3 (default), or OpenCV's rational 8-coefficient model")
    h.add_argument("--fix-intrinsics", action="store_true",
                   help="joint solver: keep --intrinsics as given (e.g. a RealSense's factory calibration)")
    h.add_argument("--outlier-px", type=float, default=3.0,
                   help="joint solver: reject a sample whose reprojection RMS exceeds this (and 4x the median)")
    h.add_argument("--outlier-mm", type=float, default=5.0, help="two-step: pose-consistency limit (and 3x median)")
    h.add_argument("--outlier-deg", type=float, default=1.0, help="two-step: pose-consistency limit (and 3x median)")
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
    w.add_argument("--intrinsics", help="only for hand-eye files without intrinsics (the two-step of older versions)")
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
    except KeyError as e:  # a results file (intrinsics.json, handeye.json) that lacks a field
        print(f"pirl-calibrate {a.command}: an input file lacks the field {e}; re-run the step that wrote it",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())


def _tf_pose(base_frame: str, ee_frame: str):
    """T_base_ee from tf2 (pirl_ros.tf_pose: rclpy code lives under ros_ws)."""
    try:
        from pirl_ros.tf_pose import RosTfPose
    except ImportError as e:
        raise CalibrationError(f"reading poses from tf needs ROS 2 and the pirl_ros package ({e}); use --poses FILE "
                               "instead") from e
    return RosTfPose(base_frame, ee_frame)
