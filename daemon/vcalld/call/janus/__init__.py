"""A client of Janus's API (https://janus.conf.meetecho.com/docs/rest): its transports, the
session and handles, and the VideoRoom plugin's requests."""
