"""Toy bimodal trajectory task + tiny MLP flow policy for benchmarking real-time chunking (RTC) on CPU.

Task: a 2-D point moves right at ~0.0105/step from x=0 to x~1 and must pass two round obstacles (radius 0.05,
centred on y=0 at x=0.33 and x=0.67) either over or under; the expert picks each side independently with p=1/2, and
starts to swerve at a random x (random speed, swerve amplitude and length, a smooth velocity wobble with random
phase, small per-step jitter). The policy observes the position [x, y] only (like a robot's joint positions); an
action is the next displacement (a velocity command), so |a_t - a_{t-1}| is the velocity discontinuity the robot
sees. Chunks have H=16 actions.

`ToyFlowPolicy` exposes exactly what `openpi.models_pytorch.rtc.sample_actions_rtc` needs (`action_horizon`,
`action_dim`, `prepare_prefix`, `velocity` with scalar or per-token time) and an openpi-convention flow-matching
loss (x_t = t*noise + (1-t)*actions, u = noise - actions), optionally with training-time RTC (`rtc_max_delay`).

Rollouts simulate the inference delay d like Kinetix `eval_flow.py`: per cycle the robot executes old[:d] while
the next chunk is computed, then new[d:s]; the new chunk is shifted by s to become the next previous chunk.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from torch import nn

from openpi.models_pytorch import rtc as rtc_t

H = 16  # action horizon
ACTION_DIM = 2
STATE_DIM = 2  # the policy observes the position only (like a robot's joint positions)
OBSTACLES = np.array([[0.3, 0.0], [0.7, 0.0]])
RADIUS = 0.05
EP_STEPS = 96  # executed control steps per rollout (x reaches ~1.0)
SWERVE_THRESHOLD = 0.05  # |y| above this = the plan has committed to a side of the obstacle


# ----------------------------------------------------------------------------------------------------- expert data
def _smoothstep(z):
    z = np.clip(z, 0.0, 1.0)
    return z * z * (3 - 2 * z)


def expert_positions(n: int, rng: np.random.Generator, steps: int = EP_STEPS + H + 1):
    """Expert trajectories [n, steps+1, 2] and their initial velocity [n, 2]."""
    u = rng.uniform(0.0100, 0.0110, n)
    x = u[:, None] * np.arange(steps + 1)[None]
    y = np.zeros_like(x)
    for c, _ in OBSTACLES:
        side = rng.choice([-1.0, 1.0], n)[:, None]
        amp = rng.uniform(0.13, 0.15, n)[:, None]
        rise = rng.uniform(0.10, 0.12, n)[:, None]
        x0 = c - 0.06 - rise - rng.uniform(0.0, 0.05, n)[:, None]  # when to swerve is random
        y = y + side * amp * _smoothstep((x - x0) / rise) * (1 - _smoothstep((x - c - 0.06) / 0.11))
    pos = np.stack([x, y], -1)
    # demonstrator noise: a smooth velocity wobble (random period 12-30 steps and phase) plus a little jitter
    t = np.arange(steps)[None, :, None]
    period = rng.uniform(12.0, 30.0, (n, 1, 2))
    wobble = rng.uniform(0.0, 1.0, (n, 1, 2)) * np.array([0.002, 0.006])
    disp = np.diff(pos, axis=1) + wobble * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi, (n, 1, 2)))
    disp = disp + rng.normal(0.0, 0.0005, (n, steps, 2))
    start = np.stack([np.zeros(n), rng.normal(0.0, 0.003, n)], -1)
    pos = np.concatenate([start[:, None], start[:, None] + np.cumsum(disp, 1)], 1)
    return pos, np.stack([u, np.zeros(n)], -1)


@dataclasses.dataclass
class Normalizer:
    """Affine normalisation to model space (like openpi's Normalize); stats from the training demos."""

    s_mean: np.ndarray
    s_std: np.ndarray
    a_mean: np.ndarray
    a_std: np.ndarray

    def state(self, p, v) -> torch.Tensor:
        s = np.concatenate([p, v], -1)[..., :STATE_DIM]
        return torch.as_tensor((s - self.s_mean) / self.s_std, dtype=torch.float32)

    def to_model(self, a) -> torch.Tensor:
        return torch.as_tensor((np.asarray(a) - self.a_mean) / self.a_std, dtype=torch.float32)

    def to_robot(self, a: torch.Tensor) -> np.ndarray:
        return a.detach().numpy().astype(np.float64) * self.a_std + self.a_mean


def make_dataset(n_demos: int, seed: int = 0):
    """(states [N,4], chunks [N,H,2]) pairs from expert demos, plus the fitted Normalizer."""
    rng = np.random.default_rng(seed)
    pos, v0 = expert_positions(n_demos, rng)
    disp = np.diff(pos, axis=1)  # a_t = p_{t+1} - p_t
    vel = np.concatenate([v0[:, None], disp[:, :-1]], 1)  # v_t = p_t - p_{t-1}
    idx = np.arange(EP_STEPS + 1)
    states = np.concatenate([pos[:, idx], vel[:, idx]], -1)[..., :STATE_DIM].reshape(-1, STATE_DIM)
    chunks = np.stack([disp[:, t : t + H] for t in idx], 1).reshape(-1, H, ACTION_DIM)
    norm = Normalizer(states.mean(0), states.std(0), chunks.reshape(-1, 2).mean(0), chunks.reshape(-1, 2).std(0))
    return (
        torch.as_tensor((states - norm.s_mean) / norm.s_std, dtype=torch.float32),
        norm.to_model(chunks),
        norm,
    )


# ------------------------------------------------------------------------------------------------------- policy
@dataclasses.dataclass
class ToyObservation:
    state: torch.Tensor  # [B, STATE_DIM] normalised


class ToyFlowPolicy(nn.Module):
    """MLP flow policy: prefix = state embedding (plays the role of the VLM KV cache), velocity = MLP(x_t, t_i, prefix)."""

    def __init__(self, width: int = 256, emb: int = 128, rtc_max_delay: int = 0):
        super().__init__()
        self.action_horizon, self.action_dim, self.rtc_max_delay = H, ACTION_DIM, rtc_max_delay
        self.state_enc = nn.Sequential(nn.Linear(STATE_DIM, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.net = nn.Sequential(
            nn.Linear(H * ACTION_DIM + 2 * H + emb, width),
            nn.SiLU(),
            nn.Linear(width, width),
            nn.SiLU(),
            nn.Linear(width, width),
            nn.SiLU(),
            nn.Linear(width, H * ACTION_DIM),
        )

    def prepare_prefix(self, observation: ToyObservation) -> torch.Tensor:
        return self.state_enc(observation.state)

    def velocity(self, prefix, observation, x_t, time) -> torch.Tensor:
        b = x_t.shape[0]
        time = torch.as_tensor(time, dtype=torch.float32)
        if time.dim() == 1:  # scalar time per example -> the same time on every token
            time = time[:, None].expand(b, H)
        feats = torch.cat([x_t.reshape(b, -1), time, torch.cos(math.pi * time), prefix], -1)
        return self.net(feats).reshape(b, H, ACTION_DIM)

    @torch.no_grad()
    def sample_actions(self, device, observation, noise=None, num_steps: int = 10) -> torch.Tensor:
        """Plain Euler sampling, t = 1 -> 0 (the same loop as PI0Pytorch.sample_actions)."""
        b = observation.state.shape[0]
        x = torch.randn(b, H, ACTION_DIM) if noise is None else noise.float()
        prefix = self.prepare_prefix(observation)
        dt, t = -1.0 / num_steps, 1.0
        while t >= -dt / 2:
            x = x + dt * self.velocity(prefix, observation, x, torch.full((b,), t))
            t += dt
        return x

    def compute_loss(self, states, actions, generator: torch.Generator) -> torch.Tensor:
        b = actions.shape[0]
        noise = torch.randn(actions.shape, generator=generator)
        t = torch.distributions.Beta(1.5, 1.0).sample((b,)) * 0.999 + 0.001
        time = t[:, None].expand(b, H)
        loss_w = torch.ones(b, H)
        if self.rtc_max_delay > 0:  # training-time RTC: clean prefix of random length d, p(d) ~ exp(D-1-d)
            dd = self.rtc_max_delay
            p = torch.exp(torch.arange(dd - 1, -1, -1, dtype=torch.float32))
            d = torch.multinomial(p / p.sum(), b, replacement=True, generator=generator)
            committed = torch.arange(H)[None] < d[:, None]
            time = torch.where(committed, 0.0, time)
            loss_w = (~committed).float() * H / (H - d[:, None]).float()
        tt = time[..., None]
        x_t = tt * noise + (1 - tt) * actions
        v = self.velocity(self.prepare_prefix(ToyObservation(states)), None, x_t, time)
        return (((v - (noise - actions)) ** 2).mean(-1) * loss_w).mean()


def train_policy(states, chunks, *, steps: int, rtc_max_delay: int = 0, seed: int = 0, batch: int = 512):
    torch.manual_seed(seed)
    model = ToyFlowPolicy(rtc_max_delay=rtc_max_delay)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps, pct_start=0.05)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, states.shape[0], (batch,), generator=gen)
        loss = model.compute_loss(states[idx], chunks[idx], gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


# ------------------------------------------------------------------------------------------------------ rollouts
@dataclasses.dataclass
class Rollout:
    pos: np.ndarray  # [B, T+1, 2] executed positions
    act: np.ndarray  # [B, T, 2] executed actions (displacements)
    swaps: list  # control steps t at which a_t is the first action of a new chunk (or a resume/stop for sync)
    switches: int  # swaps at which the new chunk's overlap commits to the other side than the old one
    committed_swaps: int  # swaps at which the old chunk's overlap commits to a side


class _Noise:
    """The same noise sequence for every method of a cell (call i gets the same tensor)."""

    def __init__(self, b: int, seed: int):
        self.gen, self.b = torch.Generator().manual_seed(seed), b

    def __call__(self):
        return torch.randn((self.b, H, ACTION_DIM), generator=self.gen)


def _start(b: int, seed: int):
    rng = np.random.default_rng(10_000 + seed)
    p = np.stack([np.zeros(b), rng.normal(0.0, 0.003, b)], -1)
    return p, np.stack([rng.uniform(0.0100, 0.0110, b), np.zeros(b)], -1)


def _plan_y(p, chunk):
    """Planned y of the positions a chunk (robot-space displacements [B,k,2]) leads to from p."""
    return p[:, None, 1] + np.cumsum(chunk[..., 1], 1)


def _count_switches(p, old, new, lo: int):
    y_old, y_new = _plan_y(p, old)[:, lo:], _plan_y(p, new[:, : old.shape[1]])[:, lo:]
    committed = (np.abs(y_old) > SWERVE_THRESHOLD).any(1)
    flip = ((y_old * y_new < 0) & (np.abs(y_old) > SWERVE_THRESHOLD) & (np.abs(y_new) > SWERVE_THRESHOLD)).any(1)
    return int((flip & committed).sum()), int(committed.sum())


def rollout(
    model,
    norm: Normalizer,
    method: str,
    delay: int,
    *,
    n: int,
    seed: int = 0,
    s: int = 8,
    steps: int = EP_STEPS,
    num_steps: int = 10,
    te_m: float = 0.01,
    beta: float = 5.0,
) -> Rollout:
    """method: naive | sync | vjp | identity | prefix | te (temporal ensembling, one inference per step)."""
    if not delay <= s <= H - delay:
        raise ValueError(f"execution horizon s={s} must satisfy d <= s <= H - d (d={delay}, H={H})")
    p, v = _start(n, seed)
    noise = _Noise(n, seed)
    pos, act, swaps = [p.copy()], [], []
    switches = committed_total = 0

    def obs():
        return ToyObservation(norm.state(p, v))

    def step(a):
        nonlocal p, v
        p, v = p + a, a
        pos.append(p.copy())
        act.append(a)

    def plain():
        return model.sample_actions("cpu", obs(), noise=noise(), num_steps=num_steps)

    if method == "te":
        chunks = {}  # start step -> robot-space chunk
        for t in range(steps):
            chunks[t] = norm.to_robot(plain())
            avail = [tau for tau in sorted(chunks) if t - tau < H and (tau == 0 or t >= tau + delay)]
            w = np.exp(-te_m * np.arange(len(avail)))  # i = 0 is the oldest prediction (ACT)
            a = sum(wi * chunks[tau][:, t - tau] for wi, tau in zip(w, avail, strict=True)) / w.sum()
            chunks.pop(t - H + 1, None)
            step(a)
        return Rollout(np.stack(pos, 1), np.stack(act, 1), [], 0, 0)

    k = H - s
    cur = norm.to_robot(plain())  # the first chunk is computed before the robot starts
    t = 0
    while t < steps:
        if method in ("naive", "sync"):
            new = norm.to_robot(plain())
        elif method in ("vjp", "identity", "prefix"):
            out = rtc_t.sample_actions_rtc(
                model,
                "cpu",
                obs(),
                prev_chunk=norm.to_model(cur[:, :k]),
                inference_delay=delay,
                method=method,
                max_guidance_weight=beta,
                num_steps=num_steps,
                noise=noise(),
            )
            new = norm.to_robot(out)
        else:
            raise ValueError(f"method {method!r}: use naive, sync, vjp, identity, prefix or te")
        lo = 0 if method == "sync" else delay
        sw, cm = _count_switches(p, cur[:, :k], new, lo)
        switches, committed_total = switches + sw, committed_total + cm
        if method == "sync":
            if delay:
                swaps.append(t)  # the robot stops while waiting for the chunk
            for _ in range(delay):
                step(np.zeros_like(p))
            t += delay
            swaps.append(t)
            seq = new[:, :s]
        else:
            swaps.append(t + delay)
            seq = np.concatenate([cur[:, :delay], new[:, delay:s]], 1)
        for i in range(s):
            step(seq[:, i])
        t += s
        cur = new[:, s:]
    return Rollout(
        np.stack(pos, 1)[:, : steps + 1],
        np.stack(act, 1)[:, :steps],
        [w for w in swaps if w < steps],
        switches,
        committed_total,
    )


# -------------------------------------------------------------------------------------------------------- metrics
def metrics(r: Rollout) -> dict:
    """Boundary/within-chunk |a_t - a_{t-1}|, jerk |a_t - 2a_{t-1} + a_{t-2}| at swaps, mode switches, collisions."""
    da = np.linalg.norm(np.diff(r.act, axis=1), axis=-1)  # da[:, t-1] = |a_t - a_{t-1}|
    jerk = np.linalg.norm(np.diff(r.act, 2, axis=1), axis=-1)  # jerk[:, t-2] = |a_t - 2a_{t-1} + a_{t-2}|
    t_all = np.arange(1, r.act.shape[1])
    swap_t = np.array([t for t in r.swaps if t >= 1], dtype=int)
    near = np.isin(t_all, swap_t)
    if swap_t.size:
        jump_swap = da[:, swap_t - 1]
        jt = np.array([j for t in swap_t for j in (t, t + 1) if 2 <= j < r.act.shape[1]], dtype=int)
        jerk_swap = jerk[:, jt - 2].max(1)
    else:  # no chunk swaps (temporal ensembling): every step is a "boundary"
        jump_swap, jerk_swap = da, jerk.max(1)
    within = da[:, ~near] if swap_t.size else da
    dist = np.linalg.norm(r.pos[:, :, None] - OBSTACLES[None, None], axis=-1).min((1, 2))
    return {
        "jump_max": float(jump_swap.max(1).mean()),
        "jump_mean": float(jump_swap.mean()),
        "within_max": float(within.max(1).mean()),
        "jerk_swap": float(jerk_swap.mean()),
        "switch_rate": r.switches / max(r.committed_swaps, 1) if r.swaps else float("nan"),
        "collision": float((dist < RADIUS).mean()),
        "progress": float(r.pos[:, -1, 0].mean()),
    }
