"""List every training config with a one-line description (`make configs`)."""

from openpi.training import config as _config


def main() -> None:
    configs = _config.list_configs()
    width = max(len(n) for n in configs)
    for name, cfg in configs.items():
        m = cfg.model
        kind = "pi0.5" if getattr(m, "pi05", False) else "pi0"
        print(f"{name:<{width}}  {kind:<5} H={m.action_horizon:<3} data={cfg.data.repo_id!s:<40} {cfg.description}")


if __name__ == "__main__":
    main()
