"""The runtime's HTTP/1.1 server: an I/O thread on `selectors`, connections, a worker pool.

It serves any object with the `App` interface (`dispatch`, `refusal`, `head_refusal`); the
Twilio Functions semantics live one level up, in `sfdcflex.runtime`. Its parts, each handed
only what it uses: server (the I/O loop, accepting, stopping), sockets (the listening socket,
the options every connection gets), connection (reading requests into buffers, lingering after
a refusal), admission (which connection gives way at the connection caps), body (a request
body in memory or spooled to a file), responder (a request through the app and its reply, on
a worker), worker (the pools of threads running jobs; on Linux they also wait for parked
connections), http11 (heads read strictly, replies laid out) and limits.
"""
