"""One module per `sim2real` subcommand.

Each module defines `register(subparsers)`, which adds its parser and sets
`func=handler` where `handler(args) -> int` returns the exit status. The CLI finds
modules here by itself, so adding a command means adding a file.
"""
