"""The runtime's HTTP/1.1 server: an I/O thread on `selectors`, connections, a worker pool.

It serves any object with the `App` interface (`dispatch`, `refusal`, `max_body_for`); the
Twilio Functions semantics live one level up, in `sfdcflex.runtime`.
"""
