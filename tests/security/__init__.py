"""One test module per threat a hostile tenant or provider poses (issue 7)."""
