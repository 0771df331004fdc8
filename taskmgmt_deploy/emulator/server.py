"""The emulator as a server on 127.0.0.1: moto's server with the fidelity layer installed.

The one way the sandbox's emulator process, the deploy benchmark's emulator process and the
tests start it, and the one `free_port` they (and the sandbox's PostgreSQL) use. moto is
imported only when a server starts.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskmgmt_deploy.core.clock import Clock
    from taskmgmt_deploy.emulator.dsql import ClusterStorage
    from taskmgmt_deploy.emulator.fidelity import Fidelity, FidelitySettings, Invoker


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(url: str) -> bool:
    """Whether an emulator (or moto's server) answers at `url`."""
    try:
        with urllib.request.urlopen(url + "/moto-api/", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def wait_until_answering(url: str, process: subprocess.Popen[Any], seconds: float) -> bool:
    """Poll until the server that `process` runs answers; False if it exits or time runs out."""
    deadline = time.monotonic() + seconds
    while not answers(url):
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@dataclass
class EmulatorServer:
    url: str
    fidelity: Fidelity
    _server: Any
    _lambda_config: dict[str, Any]

    def stop(self) -> None:
        from moto.core.config import default_user_config

        self._server.stop()
        self.fidelity.uninstall()
        default_user_config["lambda"].update(self._lambda_config)


def start_server(
    settings: FidelitySettings,
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    clock: Clock | None = None,
    invoker: Invoker | None = None,
    dsql_storage: ClusterStorage | None = None,
) -> EmulatorServer:
    """Install the fidelity layer and serve moto on host:port (0: any free port) in a thread."""
    import logging

    os.environ["MOTO_ALLOW_NONEXISTENT_REGION"] = "true"  # DSQL in us-west-2 and other regions
    from moto.core.config import default_user_config
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    from taskmgmt_deploy.emulator.fidelity import Fidelity

    saved = dict(default_user_config["lambda"])
    default_user_config["lambda"]["use_docker"] = False  # the invoker runs functions, or nothing does
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    fidelity = Fidelity(clock, settings, invoker, dsql_storage).install()
    server = ThreadedMotoServer(host, port, verbose=False)
    server.start()
    bound_host, bound_port = server.get_host_and_port()
    return EmulatorServer(f"http://{bound_host}:{bound_port}", fidelity, server, saved)
