"""Remote inference over a websocket on 127.0.0.1: same chunks as the local engine, errors come back."""

import threading

import numpy as np
import pytest

from deploy.robot.runtime import load_engine
from deploy.robot.server import RemoteEngine, RemoteError, ServerLimits, WireError, pack, serve, unpack


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


@pytest.mark.parametrize("header, message", [
    (["<f4", [-1, 5], bytes(20)], "non-negative integers"),
    (["<f4", [2, -3], bytes(24)], "non-negative integers"),
    (["<f4", [1, 5], bytes(19)], "needs 20 bytes, the message carries 19"),
    (["<f4", [True, 5], bytes(20)], "non-negative integers"),
    (["|O", [1], bytes(8)], "not accepted"),
    (["no-such-dtype", [1], bytes(8)], "not accepted"),
    (["<f4", [1] * 9, bytes(4)], "at most 8"),
    (["<f4", [1]], r"\[dtype, shape, bytes\]"),
    (["<f4", [1], "abcd"], "must be bytes"),
])
def test_array_headers_are_checked_before_anything_is_allocated(header, message):
    import msgpack

    with pytest.raises(WireError, match=message):
        unpack(msgpack.packb({"a": {"__ndarray__": header}}, use_bin_type=True))


@pytest.fixture
def served(exported):
    """(engine, url) of a server with small limits, for refusal tests."""
    engine = load_engine(exported("one"))
    server = serve(engine, "127.0.0.1", 0, ServerLimits(max_batch=2, max_message_bytes=64 << 10))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield engine, f"ws://127.0.0.1:{server.socket.getsockname()[1]}"
    server.shutdown()


def _raw(client, obj):
    client.ws.send(obj if isinstance(obj, bytes) else pack(obj))
    return unpack(client.ws.recv(timeout=10))


def test_refusals_are_typed_and_readable(served):
    import msgpack

    engine, url = served
    client = RemoteEngine(url)
    assert client.limits == ServerLimits(2, 64 << 10)
    noise = np.zeros((1, 5, 6), np.float32)
    noise[0, 2, 1] = np.nan
    with pytest.raises(RemoteError, match="initial noise is not finite") as e:
        client.infer(_obs(), noise=noise)
    assert e.value.code == "observation"
    with pytest.raises(RemoteError, match="over this server's limit of 2") as e:
        client.infer(_obs(3))
    assert e.value.code == "too_large"
    reply = _raw(client, {"observation": {}})
    assert reply["code"] == "bad_request" and "KeyError" not in reply["error"] and "'obs'" in reply["error"]
    reply = _raw(client, {"obs": {}, "noise": [1.0, 2.0]})
    assert reply["code"] == "bad_request" and "noise must be an array" in reply["error"]
    negative = msgpack.packb({"obs": {"state": {"__ndarray__": ["<f4", [-1, 5], bytes(20)]}}}, use_bin_type=True)
    reply = _raw(client, negative)
    assert reply["code"] == "bad_request" and "non-negative" in reply["error"]
    client.ws.send("a text frame")
    assert unpack(client.ws.recv(timeout=10))["code"] == "bad_request"
    np.testing.assert_array_equal(client.infer(_obs(2), noise=np.zeros((2, 5, 6), np.float32)),
                                  engine.infer(_obs(2), noise=np.zeros((2, 5, 6), np.float32)))
    client.close()


def test_an_oversized_message_is_refused_and_the_server_lives_on(served):
    from websockets.exceptions import ConnectionClosed

    _, url = served
    client = RemoteEngine(url)
    big = _obs(2)
    big["images"]["base"] = np.zeros((2, 128, 128, 3), np.uint8)  # ~98 KB, over the 64 KiB limit
    with pytest.raises(RemoteError, match="over ws://127.0.0.1:[0-9]+'s limit of 65536") as e:
        client.infer(big)  # the client knows the limit from the server's hello and does not send
    assert e.value.code == "too_large"
    client.ws.send(pack({"obs": big}))  # sent anyway: the server closes with "message too big"
    with pytest.raises(ConnectionClosed) as closed:
        client.ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    again = RemoteEngine(url)
    assert again.infer(_obs()).shape == (1, 5, 4)
    again.close()
