"""Placeholder until the hardening branch's ``run_lock`` moves here."""


class RunLock:
    def __init__(self, out):
        self.out = out

    def __enter__(self):
        from pathlib import Path

        Path(self.out).mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *exc):
        pass
