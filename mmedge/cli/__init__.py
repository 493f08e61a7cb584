"""The `mmedge` command line: one module per command group (parse → call one library function → render)."""
