"""The `lafin-aug` command line: thin click commands over library calls."""
