"""Exec over the channel protocol: exit codes from the error channel, stdout/stderr separated, timeouts.

The stream tests drive the kubernetes client's own WSClient (its channel demultiplexing, binary mode and
close handling) over a scripted websocket: frames as the API server sends them, ending in a close frame.
What they cannot prove: the websocket handshake and subprotocol negotiation with a real API server,
kubelet/CRI behaviour, or stdin EOF on v4 servers (only v5.channel.k8s.io can close stdin).
"""

from __future__ import annotations

import io
import json
import socket
from collections import deque
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.stream.ws_client import V5_CHANNEL_PROTOCOL, WSClient
from websocket import ABNF

from meshproof.kube_stream import ExecError, ExecTimeout, parse_exec_status, run_exec_stream

SUCCESS = '{"metadata":{},"status":"Success"}'
EXIT_3 = (
    '{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: '
    'error executing command [sh -c exit 3], exit code 3","reason":"NonZeroExitCode",'
    '"details":{"causes":[{"reason":"ExitCode","message":"3"}]}}'
)
NOT_FOUND = json.dumps(
    {
        "metadata": {},
        "status": "Failure",
        "message": "Internal error occurred: error executing command in container: failed to exec in "
        'container: failed to start exec "3b1f": OCI runtime exec failed: exec failed: unable to start '
        'container process: exec: "curl": executable file not found in $PATH: unknown',
        "reason": "InternalError",
        "details": {
            "causes": [{"message": "error executing command in container: failed to exec in container"}]
        },
        "code": 500,
    }
)


def test_success_status_is_exit_zero():
    assert parse_exec_status(SUCCESS) == 0


def test_non_zero_exit_code_comes_from_the_exit_code_cause():
    assert parse_exec_status(EXIT_3) == 3
    assert parse_exec_status(EXIT_3.encode()) == 3


def test_a_command_that_never_ran_is_an_error_not_an_exit_code():
    with pytest.raises(ExecError, match=r'exec: "curl": executable file not found'):
        parse_exec_status(NOT_FOUND)


@pytest.mark.parametrize("payload", ["", "   ", "not json at all"])
def test_missing_or_garbled_status_is_an_error(payload: str):
    with pytest.raises(ExecError):
        parse_exec_status(payload)


class ScriptedWebSocket:
    """Stands in for websocket.WebSocket: hands out scripted frames, then a close frame."""

    def __init__(self, frames: list[bytes], *, hang: bool = False) -> None:
        self.frames = deque(frames)
        self.hang = hang
        self.sent: list[bytes] = []
        self.connected = True
        self.subprotocol = V5_CHANNEL_PROTOCOL
        self._readable, self._writer = socket.socketpair()
        if frames or not hang:
            self._writer.send(b"!")  # keeps the fd readable for WSClient's poll()
        self.sock = self._readable

    def recv_data_frame(self, control_frame: bool) -> tuple[int, Any]:
        if self.frames:
            return ABNF.OPCODE_BINARY, SimpleNamespace(data=self.frames.popleft())
        if self.hang:
            self._readable.recv(1)  # nothing more to read: the command is still running
            return ABNF.OPCODE_PING, SimpleNamespace(data=b"")
        return ABNF.OPCODE_CLOSE, SimpleNamespace(data=b"")

    def send(self, payload: bytes, opcode: int) -> None:
        self.sent.append(payload)

    def close(self, **kwargs: Any) -> None:
        self.connected = False
        self._readable.close()
        self._writer.close()


def ws_client(sock: ScriptedWebSocket) -> WSClient:
    """The library's WSClient on a scripted socket, set up as its constructor does for binary exec."""
    client = WSClient.__new__(WSClient)
    client._connected = True
    client._channels = {}
    client._closed_channels = set()
    client.subprotocol = sock.subprotocol
    client.binary = True
    client.newline = b"\n"
    client._all = io.BytesIO()
    client.sock = sock
    client._returncode = None
    return client


def frame(channel: int, data: str | bytes) -> bytes:
    return bytes([channel]) + (data.encode() if isinstance(data, str) else data)


def test_stdout_stderr_and_exit_code_are_separated():
    sock = ScriptedWebSocket(
        [frame(1, "line one\n"), frame(2, "warning: x\n"), frame(1, "line two\n"), frame(3, EXIT_3)]
    )
    result = run_exec_stream(ws_client(sock), stdin=None, timeout=5, describe="exec test")
    assert (result.stdout, result.stderr, result.exit_code) == ("line one\nline two\n", "warning: x\n", 3)
    assert not result.ok


def test_multibyte_characters_split_across_frames_survive():
    text = "ztunnel → istiod ✓".encode()
    cut = text.index("→".encode()) + 1  # cut inside the arrow's three bytes
    sock = ScriptedWebSocket([frame(1, text[:cut]), frame(1, text[cut:]), frame(3, SUCCESS)])
    result = run_exec_stream(ws_client(sock), stdin=None, timeout=5, describe="exec test")
    assert result.stdout == "ztunnel → istiod ✓"
    assert result.exit_code == 0


def test_stdin_is_sent_on_channel_zero_and_then_closed():
    sock = ScriptedWebSocket([frame(1, "hello"), frame(3, SUCCESS)])
    run_exec_stream(ws_client(sock), stdin="hello", timeout=5, describe="exec test")
    assert sock.sent[0] == b"\x00hello"
    assert sock.sent[1] == bytes([255, 0])  # v5 CLOSE of channel 0: the command sees EOF


def test_a_stream_that_closes_without_status_is_an_error():
    sock = ScriptedWebSocket([frame(1, "partial")])
    with pytest.raises(ExecError, match="without an exit status"):
        run_exec_stream(ws_client(sock), stdin=None, timeout=5, describe="exec test")


def test_a_command_that_does_not_finish_times_out_with_its_description():
    sock = ScriptedWebSocket([], hang=True)
    with pytest.raises(ExecTimeout, match=r"exec \['sleep', '3600'\] in pod a/b: no exit after 0.3s"):
        run_exec_stream(
            ws_client(sock), stdin=None, timeout=0.3, describe="exec ['sleep', '3600'] in pod a/b"
        )
    assert not sock.connected  # the stream is closed, not leaked
