"""ALSA capture and playback through pyalsaaudio: each device runs in its own thread."""
