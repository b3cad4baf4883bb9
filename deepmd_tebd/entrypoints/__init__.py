"""Entry points of the `dp` subcommands: each wires parsed arguments to the package."""
