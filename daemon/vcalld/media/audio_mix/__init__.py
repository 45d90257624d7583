"""Music and announcements mixed into what the call hears and what the speaker plays.

A file or http(s) stream is decoded in its own thread (`decoder`), a bounded queue ahead; the
outgoing audio takes from it frame by frame (`player`), so the microphone's clock paces the
mix and the speaker gets a copy of each part as it goes to the call; `controller` turns
commands into players and keeps the state's `audio_mix` true. What the speaker plays is the
echo canceller's reference, so the device's microphone sends the music only once: mixed in
digitally after echo cancellation.
"""
