"""The physics localizer: localization in a known room from one frame of echoes by an
image-source model of the room (:class:`~echoloc_ros.core.physics.localizer.PhysicsLocalizer`)."""
