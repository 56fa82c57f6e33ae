"""echo_localizer: the echo processor and the localizer in one process (one executor).

The two nodes stay what they are, with their names, parameters (each its own section of the
parameter file), diagnostics and topics, but each frame's features go from the processor to
the localizer in the same callback, as the message's fields (``cdr.FeaturesView``): not
serialized, not carried by DDS to another process, one executor wake-up a frame instead of
two. ``echoloc/features`` is still published whenever another process subscribes to it (the
furniture survey in a furnished room, a recorder). The localizer's pose is the two-process
graph's, to the bit: it reads the same message. Started by ``echoloc bringup --one-process``
or ``one_process:=true`` (launch).
"""
from rclpy.node import Node

from echoloc.msg import EchoFeatures
from echoloc_ros.nodes.common import run
from echoloc_ros.nodes.echo_processor import EchoProcessorNode
from echoloc_ros.nodes.localizer import LocalizerNode


def join(processor: EchoProcessorNode, localizer: LocalizerNode) -> None:
    """Hand ``processor``'s features to ``localizer`` in this process, instead of through its
    subscription to ``echoloc/features`` (removed, so the localizer does not take each frame
    twice, nor make the processor publish for it)."""
    for subscription in list(localizer.subscriptions):
        if subscription.msg_type is EchoFeatures:
            localizer.destroy_subscription(subscription)
    processor.local_readers.append(localizer.on_features)


def build() -> list[Node]:
    """The two nodes, joined: the echo processor first (its frames drive the localizer)."""
    processor = EchoProcessorNode()
    try:
        localizer = LocalizerNode()
    except BaseException:
        processor.destroy_node()
        raise
    join(processor, localizer)
    return [processor, localizer]


def main(args=None) -> int:
    return run(build, args)


if __name__ == '__main__':
    raise SystemExit(main())
