"""vcalld's own audio engine on the wire: Opus through libopus, RED, and the playout buffer."""
