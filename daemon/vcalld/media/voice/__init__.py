"""Voice processing of the microphone: echo cancellation, noise suppression, gain control."""
