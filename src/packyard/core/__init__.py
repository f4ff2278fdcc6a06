"""Pure domain rules: no I/O, only the standard library and `packaging`."""
