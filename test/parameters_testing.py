"""Setting a running node's parameters from a test, as ``ros2 param set`` does: through the
node's own parameter services over DDS."""
import time

from rcl_interfaces.msg import SetParametersResult
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient

_clients: dict = {}


def set_parameters(node, target: str, parameters: list[Parameter],
                   timeout_s: float = 20.0) -> list[SetParametersResult]:
    """Set ``parameters`` on node ``target``, one result each (``node`` must be spinning)."""
    key = (node, target)
    if key not in _clients:
        _clients[key] = AsyncParameterClient(node, target)
    client = _clients[key]
    if not client.wait_for_services(timeout_sec=timeout_s):
        raise TimeoutError(f'no parameter services from node {target!r}')
    future = client.set_parameters(parameters)
    deadline = time.monotonic() + timeout_s
    while not future.done():
        if time.monotonic() > deadline:
            raise TimeoutError(f'no answer from {target!r}\'s set_parameters')
        time.sleep(0.02)
    return list(future.result().results)
