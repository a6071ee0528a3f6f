"""The canonical, provider-neutral model of a chat call.

Every inbound dialect converts into these types and every provider converts out of
them. This package imports nothing else from the project and does no I/O, so it is the
one place that defines what a request, a response and a stream event *are*.
"""
