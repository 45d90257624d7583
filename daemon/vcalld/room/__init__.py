"""The built-in room server: WebSocket signalling for named rooms plus the browser client."""
