"""A simulated AgileX Piper that speaks the Piper V2 CAN protocol on a python-can bus.

The real `piper_sdk` talks to it exactly as to the hardware: run the SDK on python-can's `virtual` interface
with the same channel name (see `robot_piper.driver.PiperDriver(interface="virtual")`). This module does not
import the SDK: ids, byte layouts (big-endian) and units are written out from piper_sdk 0.6.2's protocol
(`piper_msgs/msg_v2/can_id.py`, `protocol/protocol_v2/piper_protocol_v2.py`), so the SDK's own decoder checks
our encoding.

Commands understood (SDK call -> id): EmergencyStop/ResetPiper 0x150, MotionCtrl_2 0x151, JointCtrl
0x155-0x157 (0.001 deg), GripperCtrl 0x159 (0.001 mm), MasterSlaveConfig 0x470, EnableArm/DisableArm 0x471,
the limit queries 0x472 sent by ConnectPort. Feedback at `rate_hz` (200 Hz like the arm): status 0x2A1, end
pose 0x2A2-0x2A4 (FK from the SDK's DH table), joints 0x2A5-0x2A7, gripper 0x2A8, motor high-speed info
0x251-0x256; driver low-speed info 0x261-0x266 (carries the enable bits `EnablePiper` waits for) at
`low_rate_hz`. Other ids (MIT, Cartesian MOVE P/L/C, parameter config) are ignored and counted.

Master/follower (0x470): 0xFC makes it the motion output arm (follower; it also behaves so when never
configured). 0xFA makes it the teaching input arm (master) at once: motors limp, motion/enable commands ignored,
and instead of feedback it sends 0x151, 0x155-0x157 and 0x159 control frames with its own pose (moved by `hand`)
at `rate_hz`, which a follower on the same bus executes. A master set back to follower stays master until
`power_cycle()`, as the hardware needs a restart for that. Every 0x155-0x157 / 0x159 frame received is recorded
(`received_commands()`).

Motion model: with all six motors enabled, CAN control mode (0x01) and MOVE J (0x01), each joint moves toward
its target at `max_joint_speed * speed% / 100` rad/s; targets are clamped to the joint limits (the status
then reports 0x04 "target exceeds limit" with the joint's bit set in err_code). The gripper moves at
`gripper_speed` m/s within [0, 0.07] m while enabled. Emergency stop (0x150 byte0=0x01) holds the current
pose and ignores motion until reset (0x02), which, like the arm, disables the motors and returns to standby.
"""

from __future__ import annotations

import collections
import logging
import math
import struct
import threading
import time

import can
import numpy as np

from robot_piper.limits import HOME
from robot_piper.limits import JOINT_HIGH
from robot_piper.limits import JOINT_LOW

logger = logging.getLogger("robot_piper.can_sim")

# --- CAN ids (piper_sdk CanIDPiper) ---
ID_MOTION_CTRL_1 = 0x150  # emergency stop / resume
ID_MOTION_CTRL_2 = 0x151  # ctrl mode, move mode, speed %, MIT flag
ID_JOINT_CTRL = (0x155, 0x156, 0x157)  # joints (1,2), (3,4), (5,6): int32 0.001 deg
ID_GRIPPER_CTRL = 0x159  # int32 0.001 mm, uint16 effort 0.001 N*m, uint8 code, uint8 set_zero
ID_MASTER_SLAVE = 0x470
ID_MOTOR_ENABLE = 0x471  # uint8 motor (1-6, 7 = all), uint8 flag (0x01 disable, 0x02 enable)
ID_SEARCH_LIMITS = 0x472  # uint8 motor, uint8 what (0x01 angle/speed, 0x02 acceleration)
ID_LIMITS_FEEDBACK = 0x473  # uint8 motor, int16 max angle 0.1 deg, int16 min angle, uint16 max speed 0.001 rad/s
ID_ACC_FEEDBACK = 0x47C  # uint8 motor, uint16 max acc 0.01 rad/s^2
ID_STATUS = 0x2A1
ID_END_POSE = (0x2A2, 0x2A3, 0x2A4)  # (X, Y), (Z, RX), (RY, RZ): int32 0.001 mm / 0.001 deg
ID_JOINT_FEEDBACK = (0x2A5, 0x2A6, 0x2A7)
ID_GRIPPER_FEEDBACK = 0x2A8  # int32 0.001 mm, int16 effort, uint8 status (bit6 = enabled)
ID_HIGH_SPD = tuple(range(0x251, 0x257))  # int16 speed 0.001 rad/s, int16 current 0.001 A, int32 pos 0.001 rad
ID_LOW_SPD = tuple(range(0x261, 0x267))  # uint16 0.1 V, int16 foc temp, int8 motor temp, uint8 status, uint16 mA

# --- protocol values ---
CTRL_STANDBY, CTRL_CAN, CTRL_LINKAGE_TEACHING = 0x00, 0x01, 0x06
LINKAGE_MASTER, LINKAGE_FOLLOWER = 0xFA, 0xFC  # MasterSlaveConfig: teaching input arm / motion output arm
MOVE_J = 0x01
STATUS_NORMAL, STATUS_ESTOP, STATUS_LIMIT = 0x00, 0x01, 0x04
ENABLE_BIT = 1 << 6  # in the low-speed foc status and the gripper status byte
GRIPPER_MAX = float(JOINT_HIGH[6])

MDEG_PER_RAD = 1000.0 * 180.0 / math.pi
_LOW_MDEG = [round(v * MDEG_PER_RAD) for v in JOINT_LOW[:6]]
_HIGH_MDEG = [round(v * MDEG_PER_RAD) for v in JOINT_HIGH[:6]]

# Modified-DH table shipped in piper_sdk.kinematics.piper_fk (dh_is_offset=1): a, d in mm, angles in rad
_DH_A = np.array([0.0, 0.0, 285.03, -21.98, 0.0, 0.0])
_DH_ALPHA = np.array([0.0, -math.pi / 2, 0.0, math.pi / 2, -math.pi / 2, math.pi / 2])
_DH_THETA = np.array([0.0, -math.radians(172.22), -math.radians(102.78), 0.0, 0.0, 0.0])
_DH_D = np.array([123.0, 0.0, 0.0, 250.75, 0.0, 91.0])


def forward_kinematics(q) -> np.ndarray:
    """Flange pose for joints `q` (rad): [x, y, z] in mm and [roll, pitch, yaw] in degrees (the SDK's units)."""
    t = np.eye(4)
    for a, alpha, theta0, d, qi in zip(_DH_A, _DH_ALPHA, _DH_THETA, _DH_D, q[:6]):
        ct, st = math.cos(qi + theta0), math.sin(qi + theta0)
        ca, sa = math.cos(alpha), math.sin(alpha)
        t = t @ np.array(
            [[ct, -st, 0, a], [st * ca, ct * ca, -sa, -sa * d], [st * sa, ct * sa, ca, ca * d], [0, 0, 0, 1]]
        )
    r = t[:3, :3]
    pitch = math.atan2(-r[2, 0], math.hypot(r[0, 0], r[1, 0]))
    yaw = math.atan2(r[1, 0], r[0, 0])
    roll = math.atan2(r[2, 1], r[2, 2])
    return np.r_[t[:3, 3], np.degrees([roll, pitch, yaw])]


def _frame(can_id: int, fmt: str, *values) -> can.Message:
    data = struct.pack(">" + fmt, *values)
    return can.Message(arbitration_id=can_id, data=data.ljust(8, b"\0"), is_extended_id=False)


def _i32(x: float) -> int:
    return max(-(2**31), min(2**31 - 1, int(round(x))))


class _BusThread:
    """A python-can bus served by one thread at a fixed rate (start/stop, usable as a context manager)."""

    def __init__(self, channel: str, interface: str, rate_hz: float):
        self.channel, self.interface, self.rate_hz = channel, interface, float(rate_hz)
        self._bus: can.BusABC | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self):
        if self._thread is not None:
            return self
        self._bus = can.Bus(interface=self.interface, channel=self.channel, receive_own_messages=False)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"{type(self).__name__}:{self.channel}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._thread = None
        self._bus.shutdown()
        self._bus = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _send(self, msg: can.Message) -> None:
        try:
            self._bus.send(msg)
        except can.CanError as e:  # a closed peer must not kill the simulator
            logger.debug("send 0x%X failed: %s", msg.arbitration_id, e)

    def _run(self) -> None:
        raise NotImplementedError


class SimPiperArm(_BusThread):
    """The arm: decodes command frames, integrates joint motion, publishes feedback frames at `rate_hz`."""

    def __init__(
        self,
        channel: str,
        *,
        interface: str = "virtual",
        rate_hz: float = 200.0,
        low_rate_hz: float = 20.0,
        q0=HOME,
        max_joint_speed: float = math.pi,
        gripper_speed: float = 0.1,
        hand=None,
    ):
        """`hand(t)`: where a person moves this arm at time t (s since start) when it is configured as the teaching
        (master) arm, e.g. `leader_trajectory`; None: it stays where it is."""
        super().__init__(channel, interface, rate_hz)
        self.hand = hand
        self.low_rate_hz = low_rate_hz
        self.max_joint_speed, self.gripper_speed = max_joint_speed, gripper_speed
        self._lock = threading.Lock()
        self._q = np.array(q0, dtype=np.float64).copy()  # 6 joints (rad) + gripper (m)
        self._target = self._q.copy()
        self._enabled = np.zeros(6, dtype=bool)
        self._gripper_enabled = False
        self._ctrl_mode, self._move_mode, self._speed_pct = CTRL_STANDBY, MOVE_J, 0
        self._estop = False
        self._limit_err = 0  # err_code bits 0-5: joint target beyond its limit
        self._linkage = 0x00  # role in effect: 0x00 never configured (acts as a normal arm), 0xFA master, 0xFC follower
        self._linkage_pending = None  # a role that takes effect at the next power cycle (master -> follower)
        self._offsets = (0, 0, 0)  # feedback / ctrl / linkage id offsets of the last 0x470 (only 0 is simulated)
        self.received = collections.deque(maxlen=200_000)  # (monotonic t, can id, values) of 0x155-0x157, 0x159
        self.ticks = 0
        self.frames_in = 0
        self.ignored_ids: dict[int, int] = {}
        self._t_start = 0.0
        self._fk_cache = None

    # ---- observation helpers for tests / tools ----
    def snapshot(self) -> dict:
        with self._lock:
            return {
                "q": self._q.copy(),
                "target": self._target.copy(),
                "enabled": bool(self._enabled.all()),
                "gripper_enabled": self._gripper_enabled,
                "estop": self._estop,
                "ctrl_mode": self._ctrl_mode,
                "arm_status": self._arm_status(),
                "err_code": self._limit_err,
                "linkage_config": self._linkage,  # 0xFA teaching (master) arm, 0xFC follower
                "pending_linkage_config": self._linkage_pending,  # applied by power_cycle()
                "role": self.role,
                "ticks": self.ticks,
                "frames_in": self.frames_in,
            }

    @property
    def role(self) -> str:
        """ "master" (teaching input arm), "follower" (motion output arm) or "default" (never configured)."""
        return {LINKAGE_MASTER: "master", LINKAGE_FOLLOWER: "follower"}.get(self._linkage, "default")

    def received_commands(self) -> tuple[np.ndarray, np.ndarray]:
        """The JointCtrl / GripperCtrl commands received over the bus (accepted or not), in SI units:
        joints [n, 6] (rad, one row per complete 0x155-0x157 triple, in order) and gripper openings [m] (m)."""
        rows, cur, grip = [], {}, []
        for _t, cid, vals in list(self.received):
            if cid == ID_GRIPPER_CTRL:
                grip.append(vals[0] / 1e6)
                continue
            k = ID_JOINT_CTRL.index(cid)
            cur[k] = vals
            if k == 2 and len(cur) == 3:
                rows.append([v for i in range(3) for v in cur[i]])
                cur = {}
        joints = np.array(rows, dtype=np.float64).reshape(-1, 6) / MDEG_PER_RAD
        return joints, np.array(grip, dtype=np.float64)

    def power_cycle(self) -> None:
        """Switch the arm off and on: motors off, standby, errors cleared, a pending role applied."""
        with self._lock:
            if self._linkage_pending is not None:
                self._linkage, self._linkage_pending = self._linkage_pending, None
            self._estop, self._limit_err = False, 0
            self._enabled[:] = False
            self._gripper_enabled = False
            self._ctrl_mode = CTRL_LINKAGE_TEACHING if self._linkage == LINKAGE_MASTER else CTRL_STANDBY
            self._target[:] = self._q
        logger.info("%s power-cycled: role %s", self.channel, self.role)

    def feedback_hz(self) -> float:
        """Feedback ticks per second since start (each tick = 14 frames)."""
        dt = time.monotonic() - self._t_start
        return self.ticks / dt if dt > 0 else 0.0

    # ---- protocol ----
    def _arm_status(self) -> int:
        if self._estop:
            return STATUS_ESTOP
        return STATUS_LIMIT if self._limit_err else STATUS_NORMAL

    def _can_move(self) -> bool:
        return not self._estop and self._ctrl_mode == CTRL_CAN and bool(self._enabled.all())

    def handle(self, msg: can.Message) -> None:
        """Apply one command frame (called from the bus thread; public so tests can drive it directly)."""
        cid, d = msg.arbitration_id, bytes(msg.data).ljust(8, b"\0")
        self.frames_in += 1
        if cid in ID_JOINT_CTRL:
            self.received.append((time.monotonic(), cid, struct.unpack(">ii", d)))
        elif cid == ID_GRIPPER_CTRL:
            self.received.append((time.monotonic(), cid, struct.unpack(">iHBB", d)))
        with self._lock:
            if cid == ID_MASTER_SLAVE:
                self._configure_linkage(d[0], d[1], d[2], d[3])
            elif cid == ID_SEARCH_LIMITS:
                self._answer_limits(d[0], d[1])
            elif self._linkage == LINKAGE_MASTER:  # a teaching arm is moved by hand: no motion commands
                self.ignored_ids[cid] = self.ignored_ids.get(cid, 0) + 1
            elif cid == ID_MOTION_CTRL_1:
                if d[0] == 0x01:
                    self._estop = True
                    self._target[:] = self._q
                    logger.warning("emergency stop on %s: holding the current pose", self.channel)
                elif d[0] == 0x02:  # resume/reset: clears errors, motors off, standby
                    self._estop, self._limit_err = False, 0
                    self._enabled[:] = False
                    self._gripper_enabled = False
                    self._ctrl_mode = CTRL_STANDBY
                    self._target[:] = self._q
            elif cid == ID_MOTION_CTRL_2:
                self._ctrl_mode, self._move_mode = d[0], d[1]
                self._speed_pct = min(int(d[2]), 100)
            elif cid in ID_JOINT_CTRL:
                if self._can_move() and self._move_mode == MOVE_J:
                    i = 2 * ID_JOINT_CTRL.index(cid)
                    self._set_joint_targets(i, struct.unpack(">ii", d))
            elif cid == ID_GRIPPER_CTRL:
                opening, _effort, code, _zero = struct.unpack(">iHBB", d)
                if not self._estop:
                    self._gripper_enabled = bool(code & 0x01)
                    if self._gripper_enabled:
                        self._target[6] = min(max(opening / 1e6, 0.0), GRIPPER_MAX)
            elif cid == ID_MOTOR_ENABLE:
                motor, flag = d[0], d[1]
                on, was = flag == 0x02, self._enabled.copy()
                if motor in (7, 0xFF):
                    self._enabled[:] = on
                    if not on:
                        self._gripper_enabled = False
                elif 1 <= motor <= 6:
                    self._enabled[motor - 1] = on
                newly = self._enabled & ~was
                self._target[:6][newly] = self._q[:6][newly]  # a motor that comes on holds its pose
            else:
                self.ignored_ids[cid] = self.ignored_ids.get(cid, 0) + 1

    def _configure_linkage(self, code: int, feedback_offset: int, ctrl_offset: int, linkage_offset: int) -> None:
        if code not in (LINKAGE_MASTER, LINKAGE_FOLLOWER):
            logger.warning("0x470 linkage_config 0x%02X is not a role (0xFA master, 0xFC follower): ignored", code)
            return
        self._offsets = (feedback_offset, ctrl_offset, linkage_offset)
        if any(self._offsets):
            logger.warning("0x470 id offsets %s are stored but not simulated (ids stay 0x15x / 0x2Ax)", self._offsets)
        if code == LINKAGE_MASTER:  # immediate: motors go limp for hand guiding, the arm starts sending commands
            self._linkage, self._linkage_pending = code, None
            self._enabled[:] = False
            self._gripper_enabled = False
            self._ctrl_mode, self._estop = CTRL_LINKAGE_TEACHING, False
            self._target[:] = self._q
            logger.info("%s configured as the teaching (master) arm", self.channel)
        elif self._linkage == LINKAGE_MASTER:  # like the hardware: leaving master mode needs a restart
            self._linkage_pending = code
            logger.warning("%s: follower role set; it takes effect after a power cycle", self.channel)
        else:
            self._linkage = code

    def _set_joint_targets(self, i: int, mdeg: tuple[int, int]) -> None:
        for k, v in enumerate(mdeg):
            j = i + k
            clamped = min(max(v, _LOW_MDEG[j]), _HIGH_MDEG[j])  # compared at the protocol's resolution
            if clamped != v:
                if not self._limit_err & (1 << j):
                    logger.warning(
                        "joint %d target %.3f deg beyond its limit: clamped to %.3f", j + 1, v / 1e3, clamped / 1e3
                    )
                self._limit_err |= 1 << j
            else:
                self._limit_err &= ~(1 << j)
            self._target[j] = clamped / MDEG_PER_RAD

    def _answer_limits(self, motor: int, what: int) -> None:
        if not 1 <= motor <= 6:
            return
        j = motor - 1
        if what == 0x01:
            hi, lo = round(math.degrees(JOINT_HIGH[j]) * 10), round(math.degrees(JOINT_LOW[j]) * 10)
            self._send(_frame(ID_LIMITS_FEEDBACK, "BhhH", motor, hi, lo, round(self.max_joint_speed * 1000)))
        elif what == 0x02:
            self._send(_frame(ID_ACC_FEEDBACK, "BH", motor, 500))  # 5 rad/s^2

    # ---- simulation ----
    def step(self, dt: float) -> None:
        """Move joints and gripper toward their targets for `dt` seconds."""
        with self._lock:
            if self._linkage == LINKAGE_MASTER:
                if self.hand is not None:
                    self._q[:] = np.clip(self.hand(time.monotonic() - self._t_start), JOINT_LOW, JOINT_HIGH)
                    self._target[:] = self._q
                return
            if self._can_move():
                vmax = self.max_joint_speed * self._speed_pct / 100.0 * dt
                self._q[:6] += np.clip(self._target[:6] - self._q[:6], -vmax, vmax)
            if self._gripper_enabled and not self._estop:
                g = self.gripper_speed * dt
                self._q[6] += float(np.clip(self._target[6] - self._q[6], -g, g))

    def feedback_frames(self, low_speed: bool) -> list[can.Message]:
        """The frames of one tick: feedback, or for a teaching (master) arm its control frames only (the hardware
        sends no 0x2A* feedback in master mode: piper_sdk issue #41)."""
        with self._lock:
            if self._linkage == LINKAGE_MASTER:
                return control_frames(self._q)
            q, target = self._q.copy(), self._target.copy()
            enabled, g_on = self._enabled.copy(), self._gripper_enabled
            moving = bool(np.any(np.abs(target - q) > 1e-5))
            status = (self._ctrl_mode, self._arm_status(), self._move_mode, 0, int(moving), 0, self._limit_err)
        mdeg = [_i32(v * MDEG_PER_RAD) for v in q[:6]]
        if self._fk_cache is None or not np.array_equal(self._fk_cache[0], q[:6]):
            self._fk_cache = (q[:6], forward_kinematics(q) * 1000.0)  # 0.001 mm / 0.001 deg
        pose = self._fk_cache[1]
        frames = [_frame(ID_STATUS, "BBBBBBH", *status)]
        frames += [_frame(ID_END_POSE[k], "ii", _i32(pose[2 * k]), _i32(pose[2 * k + 1])) for k in range(3)]
        frames += [_frame(ID_JOINT_FEEDBACK[k], "ii", mdeg[2 * k], mdeg[2 * k + 1]) for k in range(3)]
        frames.append(_frame(ID_GRIPPER_FEEDBACK, "ihB", _i32(q[6] * 1e6), 0, ENABLE_BIT if g_on else 0))  # no contact
        frames += [_frame(ID_HIGH_SPD[j], "hhi", 0, 0, _i32(q[j] * 1000)) for j in range(6)]
        if low_speed:
            frames += [
                _frame(ID_LOW_SPD[j], "HhbBH", 240, 30, 30, ENABLE_BIT if enabled[j] else 0, 0) for j in range(6)
            ]
        return frames

    def _run(self) -> None:
        period = 1.0 / self.rate_hz
        low_every = max(1, round(self.rate_hz / self.low_rate_hz))
        self._t_start = last = time.monotonic()
        next_t = last
        while not self._stop.is_set():
            msg = self._bus.recv(timeout=max(0.0, next_t - time.monotonic()))
            if msg is not None:
                self.handle(msg)
                if time.monotonic() < next_t:
                    continue
            now = time.monotonic()
            self.step(min(now - last, 0.05))  # a starved thread slows the arm down, it never jumps
            last = now
            for f in self.feedback_frames(low_speed=self.ticks % low_every == 0):
                self._send(f)
            self.ticks += 1
            next_t += period  # late ticks are caught up (the average rate holds on a loaded CPU) ...
            if now - next_t > 0.1:  # ... unless far behind: then skip them instead of bursting
                next_t = now


def control_frames(q) -> list[can.Message]:
    """A teaching arm's output for pose `q` (rad, m): 0x151 (CAN control, MOVE J, 100 %), 0x155-0x157, 0x159."""
    mdeg = [_i32(v * MDEG_PER_RAD) for v in q[:6]]
    frames = [_frame(ID_MOTION_CTRL_2, "BBBB", CTRL_CAN, MOVE_J, 100, 0)]
    frames += [_frame(ID_JOINT_CTRL[k], "ii", mdeg[2 * k], mdeg[2 * k + 1]) for k in range(3)]
    frames.append(_frame(ID_GRIPPER_CTRL, "iHBB", _i32(q[6] * 1e6), 1000, 0x01, 0))
    return frames


def leader_trajectory(t: float) -> np.ndarray:
    """The scripted teaching (master) arm: a smooth pick-like motion around HOME, `t` in seconds."""
    s = 2.0 * t
    q = HOME + 0.3 * np.sin(s + np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 0.0])) * np.array([1, 0.5, 0.5, 1, 0.5, 1, 0])
    q[6] = 0.035 + 0.03 * np.sin(s)
    return np.clip(q, JOINT_LOW, JOINT_HIGH)


class SimLeaderArm(_BusThread):
    """A teaching (master) arm in linkage mode: sends 0x151, 0x155-0x157 and 0x159 control frames at `rate_hz`,
    as the real master arm does; the follower executes them and the SDK exposes them via GetArmJointCtrl."""

    def __init__(self, channel: str, *, interface: str = "virtual", rate_hz: float = 200.0, trajectory=None):
        super().__init__(channel, interface, rate_hz)
        self.trajectory = trajectory or leader_trajectory
        self.t0 = 0.0  # monotonic time of trajectory t = 0

    def frames(self, t: float) -> list[can.Message]:
        return control_frames(self.trajectory(t))

    def _run(self) -> None:
        self.t0 = next_t = time.monotonic()
        period = 1.0 / self.rate_hz
        while not self._stop.is_set():
            # Drain what the others send (unused): python-can's virtual bus queues every frame for every reader,
            # unbounded, so a bus that is never read grows by ~3,000 frames/s next to a follower.
            while (wait := next_t - time.monotonic()) > 0 and not self._stop.is_set():
                self._bus.recv(timeout=wait)
            for f in self.frames(time.monotonic() - self.t0):
                self._send(f)
            next_t = max(next_t + period, time.monotonic() - 0.1)


def main(
    channel: str = "239.74.163.2", interface: str = "udp_multicast", leader: bool = False, rate_hz: float = 200.0
) -> None:
    """Run the simulated arm (and optionally the teaching arm) until Ctrl-C, for clients in other processes:

    python -m robot_piper.can_sim [--leader]           # arm on udp_multicast 239.74.163.2
    python -m robot_piper.run --sim --can-interface udp_multicast --can-name 239.74.163.2 ...
    """
    arm = SimPiperArm(channel, interface=interface, rate_hz=rate_hz).start()
    lead = SimLeaderArm(channel, interface=interface).start() if leader else None
    print(
        f"simulated Piper on {interface}:{channel} at {rate_hz:.0f} Hz{' with a teaching arm' if leader else ''}",
        flush=True,
    )
    try:
        while True:
            time.sleep(5.0)
            s = arm.snapshot()
            print(f"{arm.feedback_hz():.0f} Hz  enabled={s['enabled']}  q={np.round(s['q'], 3)}", flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        if lead is not None:
            lead.stop()
        arm.stop()


if __name__ == "__main__":
    import tyro

    logging.basicConfig(level=logging.INFO)
    tyro.cli(main)
