"""The composition root's builders, one module per area: each turns settings and the config file into wired
objects and runs nothing. `tollway.bootstrap` is the entry point that puts them together; `tollway.runtime` runs
what they built."""
