"""The agent runs a whole deploy-and-classify cycle in a process where torch cannot be imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fixtures import tiny_onnx_classifier

SCRIPT = textwrap.dedent(
    """
    import importlib.abc, io, sys
    from pathlib import Path

    class NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "torchvision"):
                raise ImportError(f"{name} is blocked: the agent must not need it")
            return None

    sys.meta_path.insert(0, NoTorch())

    import numpy as np
    from PIL import Image
    from jetfleet.agent.config import AgentConfig
    from jetfleet.agent.daemon import Agent
    from jetfleet.common.fleet import ArtifactRef, ModelSpec
    from jetfleet.common.hashing import sha256_file
    from jetfleet.common.preprocess import PreprocessSpec
    from jetfleet.controller.fleet.agent_client import AgentClient

    onnx, data = Path(sys.argv[1]), Path(sys.argv[2])
    agent = Agent(AgentConfig(name="nano", listen="127.0.0.1:0", data_dir=data, backends=("onnxruntime",), insecure=True))
    port = agent.start()
    client = AgentClient(f"127.0.0.1:{port}")
    spec = ModelSpec("tiny", 1, "fp32", ArtifactRef(*sha256_file(onnx)), PreprocessSpec((8, 8), 1, (0.5,), (0.25,), ("a", "b", "c")))
    outcome = client.push(spec, {spec.onnx.sha256: onnx})
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8), 200, np.uint8)).save(buf, format="PNG")
    result = client.run_job(images=[("x.png", buf.getvalue(), None)])
    client.close()
    agent.stop(0)
    print(outcome.record.state.name, result.items, "torch" in sys.modules)
    """
)


@pytest.mark.controller  # its client is the controller's AgentClient
def test_agent_deploys_and_classifies_without_torch(tmp_path: Path) -> None:
    onnx = tiny_onnx_classifier(tmp_path / "tiny.onnx")
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(onnx), str(tmp_path / "agent")], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["ACTIVE", "1", "False"]
