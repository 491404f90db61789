"""Calibration accuracy against known truth on synthetic data (rendered ChArUco views with pixel noise):
intrinsics focal / principal-point error, hand-eye error by sample count, the realistic distorted-lens set
(joint refinement against the two-step, per seed, with the uncertainty each reports), and render-and-compare.

    python benchmarks/calibration_accuracy.py [--noise 2.0] [--seeds 3] [--no-sim]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from calibration.handeye import board_pose, pose_difference, solve_hand_eye
from calibration.intrinsics import calibrate_intrinsics
from calibration.refine import calibrate_hand_eye
from calibration.synthetic import BOARD, K_TRUE, SIZE, T_BASE_CAMERA, eye_to_hand_samples, realistic_eye_to_hand, views


def realistic_rows(seeds: int) -> None:
    """The realistic set (distorted lens, board on the gripper 0.7-1.0 m away, blur and noise), 20 samples per
    seed: both solvers from the same start (intrinsics from the samples' own views)."""
    print("\n| seed | solver | principal point err (px) | focal err | T_base_camera err | rejected | reported "
          "1-sigma | jackknife (fifths) | time |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    worst: dict[str, list[float]] = {"joint": [0, 0, 0, 0, 0], "two-step": [0, 0, 0, 0, 0]}
    for seed in range(seeds):
        s = realistic_eye_to_hand(20, seed=seed)
        dets = [BOARD.detect(im) for im in s.images]
        t0 = time.perf_counter()
        intr = calibrate_intrinsics(s.images, BOARD, distortion_model="k3", max_view_error_px=3.0)
        t_intr = time.perf_counter() - t0
        for solver in ("two-step", "joint"):
            t0 = time.perf_counter()
            r = calibrate_hand_eye(dets, s.T_base_ee, "eye-to-hand", SIZE, intr.K, intr.distortion, solver=solver)
            dt = time.perf_counter() - t0 + t_intr
            pp = float(np.abs(r.K[:2, 2] - s.K[:2, 2]).max())
            f = 100 * float(np.abs(np.diag(r.K)[:2] / np.diag(s.K)[:2] - 1).max())
            mm, deg = pose_difference(r.X, s.T_base_camera)
            rej = len(r.summary["rejected"])
            worst[solver] = [max(a, b) for a, b in zip(worst[solver], [pp, f, mm * 1e3, deg, rej], strict=True)]
            if solver == "joint":
                sg, lo = r.summary["sigma"], r.summary["leave_out"]
                reported = (f"{sg['position_mm']:.2f} mm, {sg['rotation_deg']:.3f} deg, pp "
                            f"{max(sg['cx_px'], sg['cy_px']):.2f} px")
                spread = f"{lo['position_mm']:.2f} mm, {lo['rotation_deg']:.3f} deg"
            else:
                reported = (f"(consistency residual {r.summary['residual_mm_rms']:.2f} mm, "
                            f"{r.summary['residual_deg_rms']:.3f} deg)")
                spread = "-"
            print(f"| {seed} | {solver} | {pp:.2f} | {f:.3f}% | {mm * 1e3:.2f} mm, {deg:.3f} deg | {rej} of 20 | "
                  f"{reported} | {spread} | {dt:.1f} s |")
    for solver, (pp, f, mm, deg, rej) in worst.items():
        print(f"| worst over {seeds} seeds | {solver} | {pp:.2f} | {f:.3f}% | {mm:.2f} mm, {deg:.3f} deg | "
              f"{rej:.0f} | | | |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--noise", type=float, default=2.0, help="pixel noise std (grey levels)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--no-sim", action="store_true", help="skip the render-and-compare row (needs ManiSkill)")
    a = ap.parse_args()
    print("| figure | value (mean over seeds) |\n| --- | --- |")
    f_err, c_err, rms = [], [], []
    for seed in range(a.seeds):
        r = calibrate_intrinsics(views(12, seed=100 + seed)[0], BOARD)
        f_err.append(100 * max(abs(r.K[0, 0] / K_TRUE[0, 0] - 1), abs(r.K[1, 1] / K_TRUE[1, 1] - 1)))
        c_err.append(float(np.abs(r.K[:2, 2] - K_TRUE[:2, 2]).max()))
        rms.append(r.rms)
    print(f"| intrinsics, 12 views: focal length error | {np.mean(f_err):.3f}% (max {np.max(f_err):.3f}%) |")
    print(f"| intrinsics, 12 views: principal point error | {np.mean(c_err):.2f} px (max {np.max(c_err):.2f} px) |")
    print(f"| intrinsics: reprojection RMS | {np.mean(rms):.3f} px |")
    intr = calibrate_intrinsics(views(12, seed=100)[0], BOARD)
    for n in (8, 15, 25):
        d_mm, d_deg, t = [], [], []
        for seed in range(a.seeds):
            images, T_ee = eye_to_hand_samples(n, seed=200 + seed, noise_px=a.noise)
            t0 = time.perf_counter()
            T_b = [board_pose(BOARD.detect(im), intr.K, intr.distortion) for im in images]
            res = solve_hand_eye(T_ee, T_b, "eye-to-hand")
            t.append(time.perf_counter() - t0)
            dm, dd = pose_difference(res.T, T_BASE_CAMERA)
            d_mm.append(dm * 1e3)
            d_deg.append(dd)
        print(f"| hand-eye (eye-to-hand), {n} samples: T_base_camera error | {np.mean(d_mm):.2f} mm, "
              f"{np.mean(d_deg):.3f} deg (max {np.max(d_mm):.2f} mm, {np.max(d_deg):.3f} deg); {np.mean(t):.2f} s |")
    realistic_rows(a.seeds)
    if not a.no_sim:
        from calibration.check import SimCameraView, check_alignment, perturb
        from core.camera import CameraSpec, look_at

        g = np.stack(np.meshgrid(np.linspace(0.3, 0.8, 6), np.linspace(-0.25, 0.25, 6), [0.0, 0.15]),
                     -1).reshape(-1, 3)
        truth = look_at("base_camera", [1.0, 0.35, 0.55], [0.3, 0.0, 0.05], 320, 240, fov_y_deg=55)
        view = SimCameraView("PushCube-v1", truth, seed=0)
        real = view.render(truth.T_base_camera)
        for offset in ([0.8, -0.6, 0.5, 8, -6, 5], [-1.0, 0.5, -0.7, -5, 9, -8]):
            off = perturb(truth.T_base_camera, np.asarray(offset, float))
            view.spec = CameraSpec(truth.name, truth.width, truth.height, truth.K, off)
            t0 = time.perf_counter()
            r = check_alignment(view, real, refine=True)
            px = [float(np.linalg.norm(truth.project(g) - CameraSpec(truth.name, 320, 240, truth.K, T).project(g),
                                       axis=1).mean()) for T in (off, r.T_base_camera)]
            print(f"| render-and-compare 320x240, start {offset[:3]} deg / {offset[3:]} mm: edge score | "
                  f"{r.score_before:.2f} -> {r.score_after:.2f} px; workspace reprojection {px[0]:.2f} -> "
                  f"{px[1]:.2f} px; {time.perf_counter() - t0:.0f} s |")
        view.close()


if __name__ == "__main__":
    main()
