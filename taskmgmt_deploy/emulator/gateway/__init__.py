"""API Gateway's data plane, which moto lacks: every HTTP API and WebSocket API created in the
emulator is served on its own loopback port, and GetApi's ApiEndpoint names that port
(http://127.0.0.1:P, ws://127.0.0.1:P) instead of the execute-api host, so a client that takes
the URL from ApiEndpoint, as it must on AWS, reaches it. Rows W1.. of docs/pessimistic-emulation.md.

plane.py holds the event loop thread that serves every listener (wire.py); http_api.py and
websocket_api.py answer as API Gateway does, auth.py checks SigV4 and JWTs, integration.py
invokes the function through the emulator's Lambda, issuer.py is the sandbox's OpenID Connect
issuer. Nothing is imported here: the CLI reads the issuer's URL without loading moto.
"""
