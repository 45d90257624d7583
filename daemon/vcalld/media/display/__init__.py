"""The kiosk screen: layout, per-participant tiles, compositing, and SDL2 output."""
