"""The kernel manager that runs lesson and assignment notebooks."""

from __future__ import annotations

from queue import Empty
from time import monotonic
from typing import Any

import zmq
from ipykernel.kernelspec import RESOURCES, get_kernel_dict
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from traitlets import Type

# Kernel name recorded for papermill and nbclient; the spec behind it never comes
# from the Jupyter path (see InterpreterKernelManager).
KERNEL_NAME = "python3"


POLL_SECONDS = 1.0
"""Maximum seconds of one wait on the shell socket before it is polled again."""


class PollingShellChannel(AsyncZMQSocketChannel):
    """Shell channel that waits for a reply in slices of ``POLL_SECONDS``.

    NOTE: with ipykernel 7.4, nbclient 0.11 and ipywidgets 8.1, a cell that
    displays a widget sometimes leaves nbclient waiting forever on
    ``get_msg(timeout=None)``, although the kernel has sent its reply and is idle.
    This happened in 1 run of 26 of a two-widget notebook on a loaded 2-core
    machine. Polling the socket again finds the reply, so a wait without a limit
    is split into short polls here. A wait with a limit still raises
    ``queue.Empty`` when the limit passes.
    """

    async def get_msg(self, timeout: float | None = None) -> dict[str, Any]:
        deadline = None if timeout is None else monotonic() + timeout
        while True:
            step = POLL_SECONDS
            if deadline is not None:
                step = min(step, max(0.0, deadline - monotonic()))
            try:
                return await super().get_msg(timeout=step)
            except Empty:
                if deadline is not None and monotonic() >= deadline:
                    raise


class PollingKernelClient(AsyncKernelClient):
    """Kernel client whose shell channel is a :class:`PollingShellChannel`."""

    shell_channel_class = Type(PollingShellChannel)


class InterpreterKernelManager(AsyncKernelManager):
    """Kernel manager that starts IPython with the interpreter running medkit.

    The notebook's ``kernelspec`` and every kernel spec on the Jupyter path are
    ignored. A user-level ``python3`` spec that points at another Python therefore
    cannot run the course notebooks without medkit and its pinned libraries.

    Where libzmq supports CurveZMQ, the manager provisions keys so that kernel
    traffic on the loopback TCP ports is encrypted.
    """

    client_factory = Type(PollingKernelClient, klass=AsyncKernelClient)

    def __init__(self, **kwargs: Any) -> None:
        if zmq.has("curve"):
            kwargs.setdefault("transport_encryption", "auto")
        super().__init__(**kwargs)

    @property
    def kernel_spec(self) -> KernelSpec:
        """The ipykernel spec whose ``argv`` starts with ``sys.executable``."""
        if self._kernel_spec is None:
            self._kernel_spec = KernelSpec(resource_dir=RESOURCES, **get_kernel_dict())
        return self._kernel_spec
