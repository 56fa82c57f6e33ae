"""Pure numerical core of echoloc: acoustics, geometry, simulation, processing, localization.

Nothing in this package imports rclpy or message types; arrays are numpy, units are SI.
"""
