"""V4L2 cameras: the device interface, format choice, capture thread and conversion."""
