"""Remote inference: a small websocket policy server and a client with the engine's `infer` interface, so a
robot computer without a GPU can use a GPU workstation.

    pirl-serve engines/pushcube                      # binds 127.0.0.1:8765; --host 0.0.0.0 to expose it
    engine = RemoteEngine("ws://gpu-box:8765")       # on the robot: engine.infer(obs) -> chunk

Messages are msgpack maps; numpy arrays travel as {"__ndarray__": [dtype, shape, bytes]} - never pickle.
On connect the server sends its engine.json; each request is an observation (plus optional noise) and each
reply {"actions": array} or {"error": message, "code": kind}, so bad input is refused with the runtime's own
message. Array headers are checked (dtype, non-negative shape, byte count) before anything is allocated; a
request over --max-batch observations is refused, and one over --max-message-mb closes the connection.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from dataclasses import asdict, dataclass
from typing import Any

import msgpack
import numpy as np

from deploy.robot.runtime import Engine, EngineError, load_engine

log = logging.getLogger("pirl.serve")

_ALLOWED_DTYPES = {"uint8", "int64", "float32", "float64", "bool"}
_MAX_NDIM = 8
DEFAULT_MAX_BATCH = 64
DEFAULT_MAX_MESSAGE_BYTES = 16 << 20


class RemoteError(RuntimeError):
    """The server refused a request; the message is the server's, `code` says what kind of refusal:
    bad_request (not a well-formed request), too_large (over the server's batch or message limit),
    observation (the engine's observation checks), engine (the engine failed or produced a non-finite chunk),
    internal (anything else), connection (the connection closed)."""

    def __init__(self, message: str, code: str = "internal"):
        super().__init__(message)
        self.code = code


class WireError(ValueError):
    """A message that is not a well-formed request."""


def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": [obj.dtype.str, list(obj.shape), np.ascontiguousarray(obj).tobytes()]}
    if isinstance(obj, dict):
        return {k: _encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode(v) for v in obj]
    return obj


def _array(header: Any) -> np.ndarray:
    """An array from its wire header [dtype, shape, bytes], every field checked before anything is allocated."""
    if not isinstance(header, list) or len(header) != 3:
        raise WireError("an array must be {'__ndarray__': [dtype, shape, bytes]}")
    dtype, shape, data = header
    try:
        dt = np.dtype(dtype) if isinstance(dtype, str) else None
    except TypeError:
        dt = None
    if dt is None or dt.name not in _ALLOWED_DTYPES:
        raise WireError(f"array dtype {dtype!r} is not accepted (use one of {sorted(_ALLOWED_DTYPES)})")
    if (not isinstance(shape, list) or len(shape) > _MAX_NDIM
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)):
        raise WireError(f"array shape {shape!r} must be a list of at most {_MAX_NDIM} non-negative integers")
    if not isinstance(data, bytes):
        raise WireError(f"array data must be bytes, got {type(data).__name__}")
    if len(data) != math.prod(shape) * dt.itemsize:
        raise WireError(f"array of shape {shape} and dtype {dt.name} needs {math.prod(shape) * dt.itemsize} bytes, "
                        f"the message carries {len(data)}")
    return np.frombuffer(data, dt).reshape(shape)


def _decode(obj: Any) -> Any:
    if isinstance(obj, dict):
        if "__ndarray__" in obj:
            return _array(obj["__ndarray__"])
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


def pack(obj: Any) -> bytes:
    return msgpack.packb(_encode(obj), use_bin_type=True)


def unpack(data: bytes) -> Any:
    try:
        obj = msgpack.unpackb(data, raw=False)
    except Exception as e:  # msgpack raises ValueError subclasses, TypeError (unhashable keys), OutOfData
        raise WireError(f"not a msgpack message ({type(e).__name__})") from None
    return _decode(obj)


@dataclass(frozen=True)
class ServerLimits:
    max_batch: int = DEFAULT_MAX_BATCH
    """Most observations in one request; inference memory grows with the batch."""
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    """Largest request the server reads; a larger one closes the connection (websocket code 1009)."""

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.max_message_bytes < 1024:
            raise ValueError(f"max_batch must be >= 1 and max_message_bytes >= 1024, got {self}")


def parse_request(message: Any, limits: ServerLimits) -> tuple[dict, np.ndarray | None]:
    """A decoded request -> (observation, noise or None); refuses what the engine must never see."""
    if not isinstance(message, (bytes, bytearray)):
        raise WireError("requests are binary msgpack messages, got a text frame")
    req = unpack(bytes(message))
    if not isinstance(req, dict) or not isinstance(req.get("obs"), dict):
        raise WireError("a request is a map {'obs': {images, state, instruction}, 'noise': optional array}")
    unknown = sorted(set(req) - {"obs", "noise"})
    if unknown:
        raise WireError(f"unknown request keys {unknown}; a request holds 'obs' and optionally 'noise'")
    obs, noise = req["obs"], req.get("noise")
    if noise is not None and not isinstance(noise, np.ndarray):
        raise WireError(f"noise must be an array, got {type(noise).__name__}")
    arrays = [obs.get("state"), noise, *(obs["images"].values() if isinstance(obs.get("images"), dict) else [])]
    batch = max((a.shape[0] for a in arrays if isinstance(a, np.ndarray) and a.ndim), default=0)
    if isinstance(obs.get("instruction"), list):
        batch = max(batch, len(obs["instruction"]))
    if batch > limits.max_batch:
        raise RemoteError(f"batch of {batch} observations is over this server's limit of {limits.max_batch} "
                          "(pirl-serve --max-batch); split the request", "too_large")
    return obs, noise


def _refusal(e: Exception) -> dict:
    """The reply for a failed request: a typed error with a message meant for people."""
    if isinstance(e, RemoteError):
        return {"error": str(e), "code": e.code}
    if isinstance(e, WireError):
        return {"error": f"bad request: {e}", "code": "bad_request"}
    if isinstance(e, ValueError):  # ObservationError, InstructionTooLongError
        return {"error": str(e), "code": "observation"}
    if isinstance(e, EngineError):
        return {"error": str(e), "code": "engine"}
    return {"error": f"the server failed on this request ({type(e).__name__}); see its log", "code": "internal"}


def serve(engine: Engine, host: str = "127.0.0.1", port: int = 8765, limits: ServerLimits = ServerLimits()):
    """A websocket server answering `infer` requests (call `.serve_forever()`, or `.shutdown()`)."""
    from websockets.sync.server import serve as ws_serve

    def handler(ws) -> None:
        from websockets.exceptions import ConnectionClosed

        peer = ws.remote_address
        try:
            ws.send(pack({"engine": engine.spec, "backend": engine.backend, "limits": asdict(limits)}))
            for message in ws:
                try:
                    obs, noise = parse_request(message, limits)
                    ws.send(pack({"actions": engine.infer(obs, noise=noise)}))
                except Exception as e:  # every failure goes back to the client, the server keeps serving
                    if not isinstance(e, (ValueError, RemoteError, EngineError)):
                        log.exception("request failed")
                    ws.send(pack(_refusal(e)))
        except ConnectionClosed as e:  # e.g. 1009: a message over --max-message-mb; the server serves on
            if e.rcvd is None or e.rcvd.code not in (1000, 1001):
                log.warning("connection %s closed: %s", peer, e)

    return ws_serve(handler, host, port, max_size=limits.max_message_bytes, compression=None)


class RemoteEngine:
    """The client: `infer(obs, noise=None) -> chunk` over a websocket, like a local Engine."""

    def __init__(self, url: str, timeout_s: float = 10.0):
        from websockets.sync.client import connect

        self.url, self.timeout_s = url, timeout_s
        self._connection = connect(url, max_size=64 << 20, compression=None, open_timeout=timeout_s)
        self.ws = self._connection.__enter__()  # the context-manager protocol, held open until close()
        hello = unpack(self.ws.recv(timeout=timeout_s))
        self.spec, self.backend = hello["engine"], f"remote {url} ({hello['backend']})"
        self.limits = ServerLimits(**hello.get("limits", {}))

    def infer(self, obs: dict[str, Any], noise: np.ndarray | None = None) -> np.ndarray:
        from websockets.exceptions import ConnectionClosed

        req = {"obs": {"images": dict(obs["images"]), "state": np.asarray(obs["state"]),
                       "instruction": list(obs["instruction"])}}
        if noise is not None:
            req["noise"] = np.asarray(noise, np.float32)
        message = pack(req)
        if len(message) > self.limits.max_message_bytes:
            raise RemoteError(f"the request is {len(message)} bytes, over {self.url}'s limit of "
                              f"{self.limits.max_message_bytes} (pirl-serve --max-message-mb); send fewer "
                              "observations per request", "too_large")
        try:
            self.ws.send(message)
            reply = unpack(self.ws.recv(timeout=self.timeout_s))
        except ConnectionClosed as e:
            raise RemoteError(f"{self.url} closed the connection ({e})", "connection") from None
        if "error" in reply:
            raise RemoteError(f"{self.url}: {reply['error']}", reply.get("code", "internal"))
        return np.array(reply["actions"], np.float32)

    def close(self) -> None:
        self._connection.__exit__(None, None, None)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pirl-serve", description=__doc__.splitlines()[0])
    p.add_argument("engine", help="an engine directory from pirl-export")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default: localhost only)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH,
                   help=f"most observations per request (default {DEFAULT_MAX_BATCH})")
    p.add_argument("--max-message-mb", type=float, default=DEFAULT_MAX_MESSAGE_BYTES / (1 << 20),
                   help=f"largest request in MiB (default {DEFAULT_MAX_MESSAGE_BYTES >> 20})")
    args = p.parse_args(argv)
    try:
        limits = ServerLimits(args.max_batch, int(args.max_message_mb * (1 << 20)))
        engine = load_engine(args.engine)
    except (ValueError, EngineError) as e:
        print(f"pirl-serve: {e}", file=sys.stderr)
        return 2
    with serve(engine, args.host, args.port, limits) as server:
        print(f"pirl-serve: {args.engine} on {engine.backend} at ws://{args.host}:{args.port}", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
