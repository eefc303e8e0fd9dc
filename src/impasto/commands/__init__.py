"""One module per ``impasto`` subcommand; each exposes ``main(argv) -> int``."""
