"""Frame processors: raw audio and video, changed on the way out or in (a voice changer, a
beauty filter, an overlay, a third party's), as ordered chains from `[processors]`.

A processor is a `vcalld.processors` entry point: a factory with a `kind` ("audio" or
"video"), optionally an `Options` pydantic model for its options, called with those options
to make one `FrameProcessor`. Outgoing media pass one chain per kind, once, before the fan-out
to every peer; incoming media get a chain of their own per participant, so a processor may
keep state from frame to frame. Chains run off the event loop, one frame at a time. A
processor that raises is disabled, logged and listed in the state (`disabled_processors`,
and a `processor-disabled` event); the frame goes on without it.
"""
