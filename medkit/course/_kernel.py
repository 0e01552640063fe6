"""The kernel manager that runs lesson and assignment notebooks."""

from __future__ import annotations

from typing import Any

import zmq
from ipykernel.kernelspec import RESOURCES, get_kernel_dict
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager

# Kernel name recorded for papermill and nbclient; the spec behind it never comes
# from the Jupyter path (see InterpreterKernelManager).
KERNEL_NAME = "python3"


class InterpreterKernelManager(AsyncKernelManager):
    """Kernel manager that starts IPython with the interpreter running medkit.

    The notebook's ``kernelspec`` and every kernel spec on the Jupyter path are
    ignored. A user-level ``python3`` spec that points at another Python therefore
    cannot run the course notebooks without medkit and its pinned libraries.

    Where libzmq supports CurveZMQ, the manager provisions keys so that kernel
    traffic on the loopback TCP ports is encrypted.
    """

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
