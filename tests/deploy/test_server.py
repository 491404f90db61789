"""Remote inference over a websocket on 127.0.0.1: same chunks as the local engine, errors come back."""

import threading

import numpy as np
import pytest

from deploy.runtime import load_engine
from deploy.server import RemoteEngine, RemoteError, pack, serve, unpack


def _obs(batch=1):
    rng = np.random.default_rng(3)
    return {"images": {c: rng.integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8) for c in ("base", "wrist")},
            "state": rng.standard_normal((batch, 5)).astype(np.float32), "instruction": ["pick up the cube"] * batch}


def test_remote_engine_returns_the_local_engines_chunks(exported):
    engine = load_engine(exported("one"))
    server = serve(engine, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.socket.getsockname()[1]
    try:
        client = RemoteEngine(f"ws://127.0.0.1:{port}")
        assert client.spec["cameras"] == ["base", "wrist"] and client.backend.startswith("remote ")
        noise = np.random.default_rng(0).standard_normal((2, 5, 6)).astype(np.float32)
        np.testing.assert_array_equal(client.infer(_obs(2), noise=noise), engine.infer(_obs(2), noise=noise))
        bad = _obs()
        bad["state"] = np.zeros((1, 9), np.float32)
        with pytest.raises(RemoteError, match=r"state must be \(N, 5\)"):
            client.infer(bad)
        client.ws.send(b"\xc1 not msgpack")  # a malformed request: refused, the connection and server live on
        assert "error" in unpack(client.ws.recv(timeout=10))
        client.ws.send(pack({"obs": {"images": {}, "state": np.zeros((1, 5), np.float32)}}))
        assert "instruction" in unpack(client.ws.recv(timeout=10))["error"]
        assert client.infer(_obs()).shape == (1, 5, 4)  # the server keeps serving after refusals
        client.close()
    finally:
        server.shutdown()


def test_the_wire_format_carries_arrays_without_pickle():
    msg = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "s": ["x"], "m": {"b": np.array([True, False])}}
    back = unpack(pack(msg))
    np.testing.assert_array_equal(back["a"], msg["a"])
    np.testing.assert_array_equal(back["m"]["b"], [True, False])
    assert back["s"] == ["x"]
    with pytest.raises(ValueError, match="not accepted"):
        unpack(pack({"o": np.array(["text"], dtype=object).astype("U4")}))
