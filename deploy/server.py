"""Remote inference: a small websocket policy server and a client with the engine's `infer` interface, so a
robot computer without a GPU can use a GPU workstation.

    pirl-serve engines/pushcube                      # binds 127.0.0.1:8765; --host 0.0.0.0 to expose it
    engine = RemoteEngine("ws://gpu-box:8765")       # on the robot: engine.infer(obs) -> chunk

Messages are msgpack maps; numpy arrays travel as {"__ndarray__": [dtype, shape, bytes]} - never pickle.
On connect the server sends its engine.json; each request is an observation (plus optional noise) and each
reply {"actions": array} or {"error": message}, so bad input is refused with the runtime's own message.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import msgpack
import numpy as np

from deploy.runtime import Engine, load_engine

_ALLOWED_DTYPES = {"uint8", "int64", "float32", "float64", "bool"}


class RemoteError(RuntimeError):
    """The server refused a request; the message is the server's."""


def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": [obj.dtype.str, list(obj.shape), np.ascontiguousarray(obj).tobytes()]}
    if isinstance(obj, dict):
        return {k: _encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode(v) for v in obj]
    return obj


def _decode(obj: Any) -> Any:
    if isinstance(obj, dict):
        if "__ndarray__" in obj:
            dtype, shape, data = obj["__ndarray__"]
            dt = np.dtype(dtype)
            if dt.name not in _ALLOWED_DTYPES:
                raise ValueError(f"array dtype {dt.name} is not accepted (use one of {sorted(_ALLOWED_DTYPES)})")
            return np.frombuffer(data, dt).reshape(shape)
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


def pack(obj: Any) -> bytes:
    return msgpack.packb(_encode(obj), use_bin_type=True)


def unpack(data: bytes) -> Any:
    return _decode(msgpack.unpackb(data, raw=False))


def serve(engine: Engine, host: str = "127.0.0.1", port: int = 8765):
    """A websocket server answering `infer` requests (call `.serve_forever()`, or `.shutdown()`)."""
    from websockets.sync.server import serve as ws_serve

    def handler(ws) -> None:
        ws.send(pack({"engine": engine.spec, "backend": engine.backend}))
        for message in ws:
            try:
                req = unpack(message)
                actions = engine.infer(req["obs"], noise=req.get("noise"))
                ws.send(pack({"actions": actions}))
            except Exception as e:  # every failure goes back to the client, the server keeps serving
                ws.send(pack({"error": f"{type(e).__name__}: {e}"}))

    return ws_serve(handler, host, port, max_size=64 << 20, compression=None)


class RemoteEngine:
    """The client: `infer(obs, noise=None) -> chunk` over a websocket, like a local Engine."""

    def __init__(self, url: str, timeout_s: float = 10.0):
        from websockets.sync.client import connect

        self.url, self.timeout_s = url, timeout_s
        self._connection = connect(url, max_size=64 << 20, compression=None, open_timeout=timeout_s)
        self.ws = self._connection.__enter__()  # the context-manager protocol, held open until close()
        hello = unpack(self.ws.recv(timeout=timeout_s))
        self.spec, self.backend = hello["engine"], f"remote {url} ({hello['backend']})"

    def infer(self, obs: dict[str, Any], noise: np.ndarray | None = None) -> np.ndarray:
        req = {"obs": {"images": dict(obs["images"]), "state": np.asarray(obs["state"]),
                       "instruction": list(obs["instruction"])}}
        if noise is not None:
            req["noise"] = np.asarray(noise, np.float32)
        self.ws.send(pack(req))
        reply = unpack(self.ws.recv(timeout=self.timeout_s))
        if "error" in reply:
            raise RemoteError(f"{self.url}: {reply['error']}")
        return np.array(reply["actions"], np.float32)

    def close(self) -> None:
        self._connection.__exit__(None, None, None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pirl-serve", description=__doc__.splitlines()[0])
    p.add_argument("engine", help="an engine directory from pirl-export")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: localhost only)")
    p.add_argument("--port", type=int, default=8765)
    args = p.parse_args(argv)
    engine = load_engine(args.engine)
    with serve(engine, args.host, args.port) as server:
        print(f"pirl-serve: {args.engine} on {engine.backend} at ws://{args.host}:{args.port}", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
