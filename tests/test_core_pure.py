"""The generating core is pure: it imports and runs with no IO or display libraries present."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_core_runs_without_boto3_rich_typer():
    code = textwrap.dedent(
        """
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {"boto3", "botocore", "rich", "typer", "click"}:
                    raise ImportError(f"blocked: {name}")
                return None

        sys.meta_path.insert(0, Block())
        from generator.core.shard import GenConfig, plan, shard_table

        cfg = GenConfig(seed=1, events=500, start_us=1_761_955_200_000_000, shard_size=500,
                        latency_threshold_ms=2000, customers=1_000)
        table = shard_table(cfg, plan(cfg)[0])
        assert table.num_rows == 500
        loaded = {m.split(".")[0] for m in sys.modules}
        assert not loaded & {"boto3", "botocore", "rich", "typer", "click"}, loaded
        print("pure")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "pure"
