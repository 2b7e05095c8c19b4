"""The real piper_sdk (C_PiperInterface_V2) driven over python-can's virtual bus against the simulated Piper that
speaks the CAN protocol (robot_piper.can_sim): enable, joint moves, gripper, limits, e-stop, teaching arm."""

import logging
import math
import time

import can
import numpy as np
import pytest

from robot_piper.can_sim import SimPiperArm
from robot_piper.can_sim import leader_trajectory
from robot_piper.driver import PiperDriver
from robot_piper.limits import HOME
from robot_piper.limits import JOINT_HIGH
from robot_piper.limits import JOINT_LOW
from robot_piper.sim import SimulatedPiper

MDEG = math.radians(0.001)  # protocol resolution: 0.001 degree


@pytest.fixture
def robot():
    r = SimulatedPiper()
    r.connect()
    r.allow_move_to_start = True  # these tests drive long moves on purpose (the far-start refusal: test_robots_safety)
    try:
        yield r
    finally:
        r.disconnect()
    assert r.arm._thread is None  # simulator thread joined, bus closed


def wait_until(cond, timeout=3.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def drive(robot, target, tol=2e-3, timeout=4.0, hz=100.0):
    """Stream `target` through robot.command (the safety layer) until the state is within `tol`."""
    target = np.asarray(target, dtype=np.float64)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        robot.command(target)
        if np.abs(robot.state() - target).max() < tol:
            return time.monotonic() - t0
        time.sleep(1.0 / hz)
    raise AssertionError(f"did not reach {target} in {timeout}s: state {robot.state()}")


def test_enable_and_state_readout_in_si_units(robot):
    from piper_sdk import C_PiperForwardKinematics

    st = robot.status()
    assert st.enabled and st.arm_status == 0x00
    assert wait_until(lambda: robot.status().ctrl_mode == 0x01)  # MotionCtrl_2: CAN control
    np.testing.assert_allclose(robot.state(), HOME, atol=MDEG)  # rad + m, from 0.001 deg / 0.001 mm frames
    # end pose frames (0x2A2-0x2A4) agree with the SDK's own forward kinematics
    x, y, z, rx, ry, rz = C_PiperForwardKinematics(0x01).CalFK(list(HOME[:6]))[-1]
    expect = np.r_[np.array([x, y, z]) / 1000.0, np.radians([rx, ry, rz])]
    np.testing.assert_allclose(robot.end_pose(), expect, atol=2e-5)
    time.sleep(0.5)
    assert robot.arm.feedback_hz() > 100  # 200 Hz nominal (average since start)
    assert robot.feedback_hz() > 50  # the SDK's own rate counter (0.1 s windows; noisy on a loaded CPU)

    # disabled motors do not move; EnablePiper through the SDK brings them back
    robot.sdk.DisableArm(7)
    assert wait_until(lambda: not robot.status().enabled)
    target = HOME + np.array([0.15, 0, 0, 0, 0, 0, 0])
    robot.command(target)
    time.sleep(0.2)
    assert abs(robot.state()[0] - HOME[0]) < MDEG
    robot.enable()
    assert robot.status().enabled
    drive(robot, target)


def test_move_to_joint_target_within_tolerance(robot):
    target = np.array([0.6, 1.2, -0.9, 0.4, -0.5, 0.8, 0.05])
    elapsed = drive(robot, target, tol=1e-3, timeout=6.0)
    # the farthest joint travels 0.8 rad at 50 % of pi rad/s: ~0.51 s at best
    assert elapsed > 0.45
    time.sleep(0.05)
    np.testing.assert_allclose(robot.state(), target, atol=2 * MDEG)
    assert wait_until(lambda: robot.status().motion_status == 0x00)  # "target reached"
    np.testing.assert_allclose(robot.arm.snapshot()["q"], target, atol=2 * MDEG)


def test_gripper_open_and_close(robot):
    q = robot.state().astype(np.float64)
    drive(robot, np.r_[q[:6], 0.07], tol=1e-4)
    assert wait_until(lambda: abs(robot.state()[6] - 0.07) < 1e-5)  # fully open: 70 mm
    assert robot.arm.snapshot()["gripper_enabled"]
    drive(robot, np.r_[q[:6], 0.0], tol=1e-4)
    assert wait_until(lambda: abs(robot.state()[6]) < 1e-5)  # closed
    assert robot.sdk.GetArmGripperMsgs().gripper_state.foc_status.driver_enable_status


def test_limits_are_clamped_by_the_safety_layer_and_by_the_arm(robot, caplog):
    beyond = HOME.copy()
    beyond[0], beyond[2], beyond[6] = 5.0, 1.0, 0.2  # j1 > 2.6179, j3 > 0, gripper > 0.07 m
    with caplog.at_level(logging.WARNING, logger="robot_common"):
        sent = robot.command(beyond)
    assert np.all(sent >= JOINT_LOW - 1e-9) and np.all(sent <= JOINT_HIGH + 1e-9)
    np.testing.assert_array_equal(robot.clamp_counts["limit"], [1, 0, 1, 0, 0, 0, 1])  # j1, j3, gripper
    assert "limit clamp: joint_1 5.0000 -> 2.6179, joint_3 1.0000 -> 0.0000, gripper" in caplog.text
    clamped = np.clip(beyond, JOINT_LOW, JOINT_HIGH)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 5.0 and np.abs(robot.state() - clamped).max() > 1e-3:
        robot.command(beyond)
        time.sleep(0.01)
    np.testing.assert_allclose(robot.state(), clamped, atol=1e-3)
    assert robot.status().arm_status == 0x00  # our layer never sent an out-of-limit frame

    # raw SDK frames beyond a limit: the arm clamps them itself and reports 0x04 + the joint's err bit
    robot.sdk.JointCtrl(200_000, -10_000, 0, 0, 0, 0)  # j1 200 deg (> 150), j2 -10 deg (< 0)
    assert wait_until(lambda: robot.status().arm_status == 0x04)
    assert robot.status().err_code & 0b111 == 0b011  # joints 1 and 2 flagged, joint 3 (at 0) is fine
    assert wait_until(lambda: robot.state()[1] < JOINT_LOW[1] + 1e-3)
    time.sleep(0.05)
    assert JOINT_LOW[1] - MDEG <= robot.state()[1] and robot.state()[0] <= JOINT_HIGH[0] + MDEG


def test_emergency_stop_holds_and_recovers(robot):
    far = HOME.copy()
    far[0] = 2.0
    robot.sdk.JointCtrl(*[round(v * 180_000 / math.pi) for v in far[:6]])
    time.sleep(0.15)
    robot.emergency_stop()
    assert wait_until(lambda: robot.status().arm_status == 0x01, timeout=1.0)
    held = robot.state().copy()
    assert 0.01 < held[0] < 1.5  # it was moving and stopped part-way
    for _ in range(20):  # motion commands are ignored while stopped
        robot.command(far)
        time.sleep(0.01)
    np.testing.assert_allclose(robot.state(), held, atol=MDEG)
    robot.recover()
    st = robot.status()
    assert st.enabled and st.arm_status == 0x00
    np.testing.assert_allclose(robot.state(), held, atol=MDEG)  # reset does not jump
    drive(robot, np.r_[held[:6] + np.array([0.1, 0, 0, 0, 0, 0]), held[6]])


def test_teaching_arm_commands_reach_the_sdk_and_drive_the_follower():
    robot = SimulatedPiper(leader=True)
    robot.connect()
    try:
        robot.wait_for_master()
        time.sleep(0.3)
        master = robot.master_targets()  # what the SDK decoded from the teaching arm's frames
        # it is the scripted trajectory at some recent instant (one 5 ms tick of motion = ~3e-3 rad of slack)
        now = time.monotonic() - robot.leader.t0
        grid = np.stack([leader_trajectory(t) for t in np.linspace(max(0.0, now - 2.0), now, 2001)])
        assert np.abs(grid - master).max(axis=1).min() < 5e-3
        # the follower executes the master's frames directly (linkage), lagging only by its speed limit
        assert wait_until(lambda: np.abs(robot.state() - robot.master_targets()).max() < 0.03)
        assert robot.leader._bus.queue.qsize() < 500  # it drains the follower's feedback (unbounded queue)
    finally:
        robot.disconnect()


def test_simulator_kinematics_match_the_sdk_fk():
    from piper_sdk import C_PiperForwardKinematics

    from robot_piper.can_sim import forward_kinematics

    fk = C_PiperForwardKinematics(0x01)
    rng = np.random.default_rng(0)
    for q in rng.uniform(JOINT_LOW[:6], JOINT_HIGH[:6], size=(20, 6)):
        sdk = np.array(fk.CalFK(list(q))[-1])
        ours = forward_kinematics(q)
        np.testing.assert_allclose(ours[:3], sdk[:3], atol=1e-6)  # mm
        d = (ours[3:] - sdk[3:] + 180.0) % 360.0 - 180.0  # degrees, modulo wrap-around
        np.testing.assert_allclose(d, 0.0, atol=1e-6)


def test_no_arm_on_the_bus_gives_a_clear_error():
    arm = SimPiperArm("piper_test_silent")  # never started: nothing answers
    driver = PiperDriver(arm.channel, interface="virtual", timeout_s=0.3)
    with pytest.raises(TimeoutError, match="virtual 'piper_test_silent'.*robot_piper.can_sim"):
        driver.connect()
    with pytest.raises(ValueError, match="speed_percent"):
        PiperDriver("can0", speed_percent=0)


def test_simulator_in_another_process_over_udp_multicast():
    import random
    import subprocess
    import sys

    group = f"239.74.{random.randint(0, 255)}.{random.randint(1, 254)}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "robot_piper.can_sim", "--channel", group, "--interface", "udp_multicast"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert "simulated Piper on udp_multicast" in proc.stdout.readline()
        robot = PiperDriver(group, interface="udp_multicast", timeout_s=10.0)
        robot.connect()
        try:
            target = robot.state().astype(np.float64) + np.array([0.2, 0.1, -0.1, 0, 0, 0, 0])
            drive(robot, target)
        finally:
            robot.disconnect()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_disable_clears_the_enable_bits_and_enable_brings_them_back(robot):
    robot.command(robot.state())  # a command reference exists
    robot.disable()  # DisablePiper, waits for the 0x261-0x266 enable bits to clear
    assert not any(robot.sdk.GetArmEnableStatus()) and not robot.status().enabled
    assert not robot.arm.snapshot()["enabled"]
    held = robot.state().copy()
    robot.sdk.JointCtrl(*[round(v * 180_000 / math.pi) for v in held[:6] + 0.2])  # raw frames: ignored while off
    time.sleep(0.15)
    np.testing.assert_allclose(robot.state(), held, atol=MDEG)
    robot.enable()
    assert all(robot.sdk.GetArmEnableStatus()) and robot.arm.snapshot()["enabled"]
    drive(robot, held + np.array([0.1, 0, 0, 0, 0, 0, 0]))


def test_master_follower_roles_through_the_sdk():
    from robot_piper import setup

    # a teaching arm moved "by hand" along the scripted trajectory; configure it through the SDK (0x470)
    arm = SimPiperArm("piper_test_roles", hand=leader_trajectory).start()
    driver = PiperDriver(arm.channel, interface="virtual", timeout_s=2.0)
    try:
        assert arm.role == "default"
        assert setup.configure(driver, "master", timeout_s=2.0) == "ok"
        snap = arm.snapshot()
        assert snap["linkage_config"] == 0xFA and snap["role"] == "master" and not snap["enabled"]
        # it now sends its pose as control frames (what a follower executes), no feedback
        sdk = driver.sdk
        assert wait_until(lambda: time.time() - sdk.GetArmJointCtrl().time_stamp < 0.05)
        np.testing.assert_allclose(driver.master_targets(), arm.snapshot()["q"], atol=0.02)
        t_fb = sdk.GetArmJointMsgs().time_stamp
        time.sleep(0.1)
        assert sdk.GetArmJointMsgs().time_stamp == t_fb
        # motion and enable commands are ignored by a teaching arm
        q = arm.snapshot()["q"]
        sdk.EnableArm(7)
        sdk.JointCtrl(0, 0, 0, 0, 0, 0)
        time.sleep(0.05)
        assert not arm.snapshot()["enabled"] and arm.ignored_ids.get(0x155, 0) >= 1
        assert not np.allclose(arm.snapshot()["q"], q)  # still follows the hand, not the frame
        # back to follower: like the hardware it needs a power cycle
        assert setup.configure(driver, "follower", timeout_s=0.6) == "power-cycle"
        assert arm.snapshot()["pending_linkage_config"] == 0xFC and arm.role == "master"
        arm.power_cycle()
        assert setup.configure(driver, "follower", timeout_s=2.0) == "ok"
        assert arm.role == "follower" and arm.snapshot()["ctrl_mode"] == 0x00
    finally:
        driver.disconnect()
        arm.stop()
    # the configured follower is driven as usual; a master on the same bus drives it through the firmware link
    follower = SimulatedPiper()
    master = SimPiperArm(follower.arm.channel, hand=leader_trajectory)
    follower.connect()
    try:
        follower.set_role("follower")
        assert wait_until(lambda: follower.arm.role == "follower")
        master.handle(can.Message(arbitration_id=0x470, data=[0xFA, 0, 0, 0, 0, 0, 0, 0]))  # set up beforehand
        assert master.role == "master"
        master.start()
        follower.wait_for_master()
        assert wait_until(lambda: np.abs(follower.state() - follower.master_targets()).max() < 0.03)
        assert len(follower.arm.received) > 0
    finally:
        master.stop()
        follower.disconnect()


def test_setup_cli_on_the_simulated_arm(capsys):
    from robot_piper import setup

    assert setup.main(setup.Args(role="master", sim=True)) == 0
    out = capsys.readouterr().out
    assert "0x470: 0xFA" in out and "OK: role master" in out and "collect-piper" in out
    with pytest.raises(ValueError, match="role='boss'"):
        setup.configure(PiperDriver("x", interface="virtual"), "boss")
